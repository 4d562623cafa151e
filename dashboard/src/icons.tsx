// One small icon per event topic, drawn here (no icon font), coloured by the text around it.
const PATHS: Record<string, string> = {
  // a broadcast tower
  stream: "M12 10a2 2 0 1 1 0 4 2 2 0 0 1 0-4zm-4.2-2.6 1.4 1.4a4 4 0 0 0 0 6.4l-1.4 1.4a6 6 0 0 1 0-9.2zm8.4 0a6 6 0 0 1 0 9.2l-1.4-1.4a4 4 0 0 0 0-6.4zM5 4.6 6.4 6a8 8 0 0 0 0 12L5 19.4a10 10 0 0 1 0-14.8zm14 0a10 10 0 0 1 0 14.8L17.6 18a8 8 0 0 0 0-12z",
  // two people
  audience: "M9 11a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 0 7zm7.5 0a3 3 0 1 1 0-6 3 3 0 0 1 0 6zM2 19c0-3.3 3.1-5.5 7-5.5s7 2.2 7 5.5v1H2zm15.2-5.4c2.7.3 4.8 2 4.8 4.4v1h-4.5v-1c0-1.7-.8-3.2-2.1-4.3.6-.1 1.2-.1 1.8-.1z",
  // a gem
  monetization: "M7 3h10l5 6-10 12L2 9zm1 2-2.6 3.2h4.1zm8 0-1.5 3.2h4.1zm-4-.1L10.4 8.2h3.2zM4.9 10l5.5 6.6L8.9 10zm6 0L12 17.2l1.1-7.2zm4.2 0-1.5 6.6 5.5-6.6z",
  // a shield
  moderation: "M12 2 4 5v6c0 5 3.4 9.4 8 11 4.6-1.6 8-6 8-11V5zm0 2.2 6 2.2V11c0 3.9-2.5 7.4-6 8.8-3.5-1.4-6-4.9-6-8.8V6.4z",
  // a speech bubble
  engagement: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm0 2v10h2v1.8L8.3 16H20V6z",
  // a plug
  platform: "M8 2h2v5h4V2h2v5h2v4a6 6 0 0 1-5 5.9V22h-2v-5.1A6 6 0 0 1 6 11V7h2z",
  other: "M12 8a4 4 0 1 1 0 8 4 4 0 0 1 0-8z",
};

export function TopicIcon({ topic, size = 16 }: { topic: string; size?: number }) {
  return (
    <svg className={`topic-icon topic-${topic}`} width={size} height={size} viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d={PATHS[topic] ?? PATHS.other} fill="currentColor" />
    </svg>
  );
}

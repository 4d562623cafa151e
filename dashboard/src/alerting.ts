// The person's own alerting for new warning/critical incidents: a short tone and a browser
// notification, each off until they turn it on (kept in this browser's localStorage).
import type { Incident } from "./types";

const SOUND_KEY = "controlroom.alerts.sound";
const NOTIFY_KEY = "controlroom.alerts.notify";

export interface AlertPrefs {
  sound: boolean;
  notify: boolean;
}

export function loadPrefs(): AlertPrefs {
  return {
    sound: localStorage.getItem(SOUND_KEY) === "on",
    notify: localStorage.getItem(NOTIFY_KEY) === "on" && notificationsAllowed(),
  };
}

export function savePrefs(prefs: AlertPrefs): void {
  localStorage.setItem(SOUND_KEY, prefs.sound ? "on" : "off");
  localStorage.setItem(NOTIFY_KEY, prefs.notify ? "on" : "off");
}

export function notificationsSupported(): boolean {
  return typeof window !== "undefined" && "Notification" in window;
}

function notificationsAllowed(): boolean {
  return notificationsSupported() && Notification.permission === "granted";
}

/** Asked only from the person's click: browsers refuse (and remember) a prompt nobody asked for. */
export async function askNotificationPermission(): Promise<boolean> {
  if (!notificationsSupported()) return false;
  if (Notification.permission === "granted") return true;
  if (Notification.permission === "denied") return false;
  return (await Notification.requestPermission()) === "granted";
}

let audio: AudioContext | null = null;

/** Made (or resumed) from a click, so that later tones are allowed to play. */
export function unlockSound(): void {
  audio ??= new AudioContext();
  void audio.resume();
}

// critical: two high beeps; warning: one lower beep
export function tone(severity: Incident["severity"]): void {
  if (!audio) return;
  const ctx = audio;
  const beeps = severity === "critical" ? [0, 0.22] : [0];
  const freq = severity === "critical" ? 880 : 660;
  for (const offset of beeps) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    const t = ctx.currentTime + offset;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.2, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t);
    osc.stop(t + 0.2);
  }
}

export function notify(incident: Incident, creator: string | null, open: (id: string) => void): void {
  if (!notificationsAllowed()) return;
  const n = new Notification(`${incident.severity.toUpperCase()}: ${incident.title}`, {
    body: creator ? `${creator} · incident #${incident.number}` : `Incident #${incident.number}`,
    tag: `incident-${incident.id}`,
  });
  n.onclick = () => {
    window.focus();
    open(incident.id);
    n.close();
  };
}

// The live feed: one socket, a gap-free ordered stream of events, resumed from the last seq.
// A narrowed feed (`{ creators }`) is a second socket that the relay filters to those creators.
import { io, Socket } from "socket.io-client";
import type { Connection, CreatorState, FeedEvent, Incident, ViewersUpdate } from "./types";

export interface FeedHandlers {
  events(batch: FeedEvent[]): void; // in seq order, each once, batched per animation frame
  state(state: CreatorState): void;
  connection(status: Connection, detail?: string): void;
  resync(): void; // the position could not be recovered: reload snapshot and history
  incident?(incident: Incident): void; // every transition and update of an incident
  viewers?(update: ViewersUpdate): void; // one per audience pulse run
  reconnected?(): void; // connected again after a cut: what has no seq (incidents) is fetched again
}

// A narrowed socket: only these creators' events, from just after `fromSeq` (or from the head).
export interface Narrowing {
  creators: string[];
  fromSeq?: number | null;
}

export class LiveFeed {
  lastSeq: number | null = null;
  epoch: string | null = null;
  private socket: Socket;
  private token: string;
  private tokenOf: () => string;
  private pending: FeedEvent[] = [];
  private frame = 0;
  private resuming = false;
  private retry = 0;
  private connectedOnce = false;
  private readonly creators: Set<string> | null;

  // `token` is a string, or a getter read on every (re)connect so a renewed token is used
  // without calling refreshToken first (an open socket still needs refreshToken)
  constructor(token: string | (() => string), private handlers: FeedHandlers, narrowing?: Narrowing) {
    this.tokenOf = typeof token === "string" ? () => this.token : token;
    this.token = typeof token === "string" ? token : token();
    this.creators = narrowing ? new Set(narrowing.creators) : null;
    if (narrowing?.fromSeq != null) this.lastSeq = narrowing.fromSeq;
    this.socket = io({
      transports: ["websocket"],
      // the auth callback runs on every (re)connect, so a reconnect resumes where we were;
      // a narrowed socket names its creators here too, so that even the replay that starts
      // with the connection (before `subscribe` is answered) is filtered by the relay
      auth: (cb) =>
        cb({
          token: this.tokenOf(),
          snapshot: this.creators === null,
          ...(this.creators ? { creators: [...this.creators] } : {}),
          ...(this.lastSeq !== null ? { last_seq: this.lastSeq } : {}),
          ...(this.epoch ? { epoch: this.epoch } : {}),
        }),
    });
    const s = this.socket;
    s.on("connect", () => {
      handlers.connection(this.lastSeq === null ? "connecting" : "catching up");
      if (this.connectedOnce) handlers.reconnected?.();
      this.connectedOnce = true;
      // the relay keeps subscriptions per socket: a reconnected socket subscribes again
      for (const id of this.creators ?? []) this.socket.emit("subscribe", { creator_id: id });
    });
    s.on("disconnect", (reason) => {
      if (reason !== "io client disconnect") handlers.connection("reconnecting");
    });
    s.on("connect_error", (err: Error & { data?: { code?: string; retry_after?: number } }) => {
      const transport = err.message.startsWith("websocket") || err.message.includes("xhr") || err.message === "timeout";
      // too many connects from here, or the service busy: not a refusal of the person; the
      // client does not retry after a refusal by itself, so try again when told to
      const later = err.data?.code === "rate_limited" || err.message === "service unavailable";
      if (later) this.retry = window.setTimeout(() => this.reconnect(), Math.max(1, err.data?.retry_after ?? 5) * 1000);
      handlers.connection(transport || later ? "reconnecting" : "refused", err.message);
    });
    // the server ends a session whose token ran out or whose person lost access; the page then
    // asks the sign-in service why (and gets a fresh token if the session is still good)
    s.on("session_expired", (data?: { reason?: string }) => handlers.connection("refused", data?.reason ?? "session expired"));
    s.on("event", (e: FeedEvent) => this.accept([e]));
    s.on("events", (list: FeedEvent[]) => this.accept(list));
    s.on("creator_state", (state: CreatorState) => handlers.state(state));
    s.on("incident", (incident: Incident) => handlers.incident?.(incident));
    s.on("viewers", (update: ViewersUpdate) => handlers.viewers?.(update));
    s.on("live", (data: { epoch: string; last_seq: number }) => {
      this.epoch = data.epoch;
      if (this.lastSeq === null || data.last_seq > this.lastSeq) this.lastSeq = data.last_seq;
      this.resuming = false;
      handlers.connection("live");
    });
    s.on("resync", (data: { epoch: string; last_seq: number }) => {
      this.epoch = data.epoch;
      this.lastSeq = data.last_seq;
      this.pending = [];
      handlers.connection("resynced");
      handlers.resync();
    });
  }

  private accept(list: FeedEvent[]): void {
    for (const e of list) {
      if (this.lastSeq !== null && e.seq <= this.lastSeq) continue; // seen already
      if (this.creators) {
        // A narrowed socket sees seq jump by design: the relay leaves out the other creators'
        // events but still moves this socket's cursor past them (docs/realtime.md, "A narrowed
        // socket"). Its path stays ordered and complete for its creators, so a jump is not a
        // loss and must not trigger `resume` (it would replay on every other event). After a
        // cut, resuming from the last seq seen is still right: whatever lies between it and
        // the cursor the relay had reached was left out for this filter, and the replay applies
        // the same filter. The creator check only guards against a relay that does not filter.
        this.lastSeq = e.seq;
        if (e.creator_id !== null && this.creators.has(e.creator_id)) this.pending.push(e);
        continue;
      }
      if (this.lastSeq !== null && e.seq > this.lastSeq + 1) {
        // a gap in the live stream: ask for what is missing; it arrives in order
        if (!this.resuming) {
          this.resuming = true;
          this.handlers.connection("catching up");
          this.resume();
        }
        return;
      }
      this.lastSeq = e.seq;
      this.pending.push(e);
    }
    if (!this.frame && this.pending.length) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        const batch = this.pending;
        this.pending = [];
        this.handlers.events(batch);
      });
    }
  }

  // ask for what is missing after lastSeq; refused (a replay running, or rate limited): ask again later
  private resume(): void {
    this.socket.emit("resume", { last_seq: this.lastSeq, epoch: this.epoch }, (ack?: { ok: boolean; retry_after?: number }) => {
      if (ack?.ok || !this.resuming) return;
      this.retry = window.setTimeout(() => { if (this.resuming && this.socket.connected) this.resume(); }, Math.max(1, ack?.retry_after ?? 1) * 1000);
    });
  }

  refreshToken(token: string): Promise<boolean> {
    this.token = token; // a getter, if given, is asked again on the next connect
    if (!this.socket.connected) return Promise.resolve(true); // the next connect carries it
    return new Promise((resolve) =>
      this.socket.emit("refresh_token", { token }, (ack: { ok: boolean }) => resolve(Boolean(ack?.ok))),
    );
  }

  // after a refusal the client does not retry by itself; with a fresh token it may
  reconnect(): void {
    if (!this.socket.connected) this.socket.connect();
  }

  close(): void {
    window.clearTimeout(this.retry);
    this.socket.close();
  }
}

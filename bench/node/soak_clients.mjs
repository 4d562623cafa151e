// The soak's dashboard clients: many Socket.IO clients in one process, each recording every
// event it receives (seq and arrival time). A client whose relay goes away reconnects to the
// next relay with its last seq, as the dashboard does, and the relay replays what it missed.
//
// Usage: node soak_clients.mjs CONFIG.json
//   CONFIG: {"urls": [relay URL, ...], "clients": [{"company", "token", "relay"}, ...]}
// Prints {"ready": n} once every client is live. Then reads commands on stdin, one JSON per line:
//   {"cmd": "status"}  -> {"live": n, "reconnecting": n, "received": n}
//   {"cmd": "finish", "heads": {company: last seq}, "sent": FILE, "timeout": seconds}
//     waits until each client has every seq after the one it started at (or the timeout),
//     then prints the summary (missing, duplicated, latency from the sent file) and exits;
//     with "exit": false it prints the summary and goes on (chaos checks between faults);
//     "reset": true then also forgets the reconnect times reported so far.
//   FILE: {company: [[seq, sent epoch ms, in the burst], ...]}
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const now = () => performance.timeOrigin + performance.now();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

class Client {
  constructor(spec, index) {
    this.index = index;
    this.company = spec.company;
    this.token = spec.token;
    this.relay = spec.relay;
    this.start = null; // the seq the client was live at first: it expects everything after
    this.last = 0;
    this.epoch = null;
    this.seen = new Uint8Array(1024);
    this.arrived = new Float64Array(1024);
    this.received = 0;
    this.duplicates = 0;
    this.outOfOrder = 0;
    this.resyncs = 0;
    this.reconnects = 0;
    this.downSince = null;
    this.recoveries = [];
    this.live = false;
    this.connect();
  }

  grow(seq) {
    if (seq < this.seen.length) return;
    let size = this.seen.length;
    while (size <= seq) size *= 2;
    const seen = new Uint8Array(size);
    seen.set(this.seen);
    const arrived = new Float64Array(size);
    arrived.set(this.arrived);
    this.seen = seen;
    this.arrived = arrived;
  }

  connect() {
    const auth = { token: this.token };
    if (this.start !== null) {
      auth.last_seq = this.contiguous(); // everything up to here arrived: resume after it
      if (this.epoch) auth.epoch = this.epoch;
    }
    const socket = io(config.urls[this.relay], {
      auth,
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      timeout: 5000,
    });
    this.socket = socket;
    const onEvent = (e) => this.onEvent(e);
    socket.on("event", onEvent);
    socket.on("events", (list) => list.forEach(onEvent));
    socket.on("live", (data) => {
      if (this.start === null) {
        this.start = data.last_seq;
        this.last = data.last_seq;
        ready();
      }
      this.epoch = data.epoch;
      if (this.downSince !== null) {
        this.recoveries.push(now() - this.downSince);
        this.downSince = null;
      }
      this.live = true;
    });
    socket.on("resync", () => this.resyncs++);
    socket.on("connect_error", () => this.retry());
    socket.on("disconnect", (reason) => {
      if (reason !== "io client disconnect") this.retry();
    });
  }

  retry() {
    if (this.closing) return;
    this.live = false;
    if (this.downSince === null) this.downSince = now();
    this.reconnects++;
    this.socket.removeAllListeners();
    this.socket.close();
    // another instance answers (Cloud Run routes a new connection to a live one)
    this.relay = (this.relay + 1) % config.urls.length;
    setTimeout(() => this.connect(), 200 + Math.random() * 300);
  }

  onEvent(e) {
    const seq = e.seq;
    if (this.start === null || seq <= this.start) return; // before this client was live
    this.grow(seq);
    if (this.seen[seq]) {
      this.duplicates++;
      return;
    }
    if (seq !== this.last + 1) this.outOfOrder++;
    this.seen[seq] = 1;
    this.arrived[seq] = now();
    this.received++;
    if (seq > this.last) this.last = seq;
  }

  contiguous() {
    let seq = this.start;
    while (seq + 1 < this.seen.length && this.seen[seq + 1]) seq++;
    return seq;
  }

  missing(head) {
    let n = 0;
    for (let s = this.start + 1; s <= head; s++) if (s >= this.seen.length || !this.seen[s]) n++;
    return n;
  }
}

let readyCount = 0;
function ready() {
  if (++readyCount === config.clients.length) out({ ready: readyCount });
}

const clients = config.clients.map((spec, i) => new Client(spec, i));

function status() {
  return {
    live: clients.filter((c) => c.live).length,
    reconnecting: clients.filter((c) => !c.live).length,
    received: clients.reduce((n, c) => n + c.received, 0),
  };
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function finish(cmd) {
  const heads = cmd.heads;
  const deadline = now() + cmd.timeout * 1000;
  const complete = () => clients.every((c) => c.missing(heads[c.company] ?? 0) === 0);
  while (!complete() && now() < deadline) await new Promise((r) => setTimeout(r, 250));
  const sent = cmd.sent ? JSON.parse(readFileSync(cmd.sent, "utf8")) : {};
  const sentAt = {};
  for (const [company, pairs] of Object.entries(sent)) {
    const table = new Map();
    for (const [seq, ms, burst] of pairs) table.set(seq, burst ? -ms : ms); // sign marks a burst
    sentAt[company] = table;
  }
  let total = 0;
  for (const c of clients) total += c.received;
  const all = new Float64Array(total);
  const burst = new Float64Array(total);
  const rest = new Float64Array(total);
  let n = 0, nb = 0, nr = 0;
  for (const c of clients) {
    const table = sentAt[c.company];
    if (!table) continue;
    for (let s = c.start + 1; s < c.seen.length; s++) {
      if (!c.seen[s]) continue;
      const t = table.get(s);
      if (t === undefined) continue;
      const ms = c.arrived[s] - Math.abs(t);
      all[n++] = ms;
      if (t < 0) burst[nb++] = ms;
      else rest[nr++] = ms;
    }
  }
  const stats = (values, count) => {
    const sorted = values.subarray(0, count).sort();
    return { samples: count, p50: pct(sorted, 0.5), p99: pct(sorted, 0.99), max: pct(sorted, 1) };
  };
  const recoveries = clients.flatMap((c) => c.recoveries).sort((a, b) => a - b);
  const perCompany = {};
  for (const c of clients) {
    const entry = (perCompany[c.company] ??= { clients: 0, received: 0, missing: 0, duplicates: 0 });
    entry.clients++;
    entry.received += c.received;
    entry.missing += c.missing(heads[c.company] ?? 0);
    entry.duplicates += c.duplicates;
  }
  const final = cmd.exit !== false;
  if (final) {
    for (const c of clients) {
      c.closing = true;
      c.socket.close();
    }
  }
  const summary = {
      clients: clients.length,
      received: total,
      missing: clients.reduce((m, c) => m + c.missing(heads[c.company] ?? 0), 0),
      duplicates: clients.reduce((m, c) => m + c.duplicates, 0),
      out_of_order: clients.reduce((m, c) => m + c.outOfOrder, 0),
      resyncs: clients.reduce((m, c) => m + c.resyncs, 0),
      reconnects: clients.reduce((m, c) => m + c.reconnects, 0),
      latency: { all: stats(all, n), burst: stats(burst, nb), rest: stats(rest, nr) },
      recovery_p50_ms: pct(recoveries, 0.5),
      recovery_max_ms: pct(recoveries, 1),
      per_company: perCompany,
  };
  if (final) {
    out({ summary });
    process.exit(0);
  }
  // a check between chaos scenarios: counts so far; recoveries start again if asked
  if (cmd.reset) for (const c of clients) c.recoveries = [];
  out({ summary });
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.cmd === "status") out({ status: status() });
  else if (cmd.cmd === "finish") finish(cmd);
});
lines.on("close", () => process.exit(0));
// bounded: never outlive the harness by more than this
setTimeout(() => process.exit(3), (config.max_seconds ?? 3600) * 1000);

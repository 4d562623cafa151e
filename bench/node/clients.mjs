// N Socket.IO clients in one process; counts and times every event each one receives.
// Usage: node clients.mjs URL N EXPECTED TIMEOUT_S [TOKEN]
// Prints "ready" once all are connected (and live), then one JSON summary line at the end.
import { io } from "socket.io-client";

const [url, n, expected, timeoutS, token] = process.argv.slice(2);
const N = Number(n), EXPECTED = Number(expected);
const latencies = [];
let done = 0, connected = 0, duplicates = 0, outOfOrder = 0;
const sockets = [];
const finish = () => {
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] : null;
  const complete = sockets.filter((s) => s.count === EXPECTED).length;
  console.log(JSON.stringify({ received: latencies.length, complete, duplicates, outOfOrder, p50: pct(0.5), p99: pct(0.99), max: pct(1) }));
  process.exit(0);
};
for (let i = 0; i < N; i++) {
  const socket = io(url, { auth: token ? { token } : {}, transports: ["websocket"], reconnection: false, forceNew: true });
  socket.count = 0;
  socket.last = 0;
  const onEvent = (e) => {
    const now = performance.timeOrigin + performance.now();
    latencies.push(now - e.t);
    if (e.seq <= socket.last) duplicates++;
    else if (e.seq !== socket.last + 1 && socket.last !== 0) outOfOrder++;
    socket.last = Math.max(socket.last, e.seq);
    socket.count++;
    if (socket.count === EXPECTED && ++done === N) finish();
  };
  socket.on("event", onEvent);
  socket.on("events", (list) => list.forEach(onEvent));
  const ready = () => { if (++connected === N) console.log("ready"); };
  if (token) socket.once("live", ready); else socket.once("connect", ready);
  socket.on("connect_error", (err) => { console.error("connect_error", err.message); process.exit(2); });
  sockets.push(socket);
}
setTimeout(finish, Number(timeoutS) * 1000);

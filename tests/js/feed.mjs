// Connects with the official socket.io-client, prints one JSON line per thing received,
// and exits after `seconds`. Usage: node feed.mjs URL TOKEN LAST_SEQ|- SECONDS
import { io } from "socket.io-client";

const [url, token, lastSeq, seconds] = process.argv.slice(2);
const auth = { token };
if (lastSeq !== "-") auth.last_seq = Number(lastSeq);
const socket = io(url, { auth, transports: ["websocket"], reconnection: false });
const out = (kind, data) => process.stdout.write(JSON.stringify({ kind, data }) + "\n");

socket.on("connect", () => out("connect", null));
socket.on("connect_error", (err) => out("connect_error", err.message));
socket.on("event", (event) => out("event", event));
socket.on("events", (events) => events.forEach((event) => out("event", event)));
socket.on("live", (data) => out("live", data));
socket.on("resync", (data) => out("resync", data));
setTimeout(() => {
  socket.close();
  process.exit(0);
}, Number(seconds) * 1000);

// The baseline: Node's socket.io server with its Redis adapter, doing the relay's job of
// putting every socket of a company into its room and delivering what arrives through Redis.
// Usage: node server.mjs PORT REDIS_URL ROOM
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const [port, redisUrl, room] = process.argv.slice(2);
const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);
const http = createServer();
const io = new Server(http, { adapter: createAdapter(pub, sub), perMessageDeflate: false });
io.on("connection", (socket) => socket.join(room));
http.listen(Number(port), "127.0.0.1", () => console.log("ready"));
process.on("SIGTERM", () => process.exit(0));

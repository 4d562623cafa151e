// Emits events to a room through @socket.io/redis-emitter (the Node analogue of persist's
// publish). Usage: node publish.mjs REDIS_URL ROOM COUNT RATE (RATE 0: as fast as possible)
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";

const [redisUrl, room, count, rate] = process.argv.slice(2);
const client = createClient({ url: redisUrl });
await client.connect();
const emitter = new Emitter(client);
const start = performance.now();
for (let seq = 1; seq <= Number(count); seq++) {
  if (Number(rate) > 0) {
    const wait = start + ((seq - 1) * 1000) / Number(rate) - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const t = performance.timeOrigin + performance.now();
  emitter.to(room).emit("event", { seq, t, type: "channel.cheer", topic: "monetization", summary: { amount: 100, actor_login: "bench" } });
}
await new Promise((r) => setTimeout(r, 200));
await client.quit();

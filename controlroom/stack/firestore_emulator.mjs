// Starts @firestore-emulator/server on 127.0.0.1 (its own start() binds every interface).
// Usage: node firestore_emulator.mjs PORT, with NODE_PATH pointing at its node_modules.
import { createRequire } from "node:module";
import path from "node:path";

const port = Number(process.argv[2]);
const modules = process.env.FIRESTORE_EMULATOR_MODULES;
if (!Number.isInteger(port) || !modules) {
  console.error("usage: FIRESTORE_EMULATOR_MODULES=<node_modules> node firestore_emulator.mjs PORT");
  process.exit(2);
}
const require = createRequire(path.join(modules, "noop.js"));
const { FirestoreServer } = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");

const emulator = new FirestoreServer();
emulator.server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`cannot bind 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  }
  console.log(`firestore emulator on 127.0.0.1:${port}`);
});
const stop = () => {
  emulator.server.forceShutdown();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

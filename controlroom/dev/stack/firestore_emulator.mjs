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
const {
  FirestoreServer,
  FirestoreStateCollection,
  FirestoreStateDocument,
} = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");

// The package adds a document to a collection by copying the collection's whole index
// (an immutable update), so each new document costs time in proportion to those already
// there: `make soak` saw the webhook's ledger slow from 100 to 55 creates per second within
// four minutes. Add new documents in place; everything else stays as the package does it.
FirestoreStateCollection.prototype.getDocument = function getDocument(name) {
  let document = this.documents[name];
  if (document === undefined) {
    if (Object.isFrozen(this.documents)) this.documents = { ...this.documents };
    document = new FirestoreStateDocument(this.emitter, this.database, this, name, {}, {});
    this.documents[name] = document;
  }
  return document;
};

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

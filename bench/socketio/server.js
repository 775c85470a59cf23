// The baseline Kokuban is measured against: what most teams would build for a collaborative
// whiteboard. Socket.IO 4 relays each binary point batch to the other members of the sender's
// room; with --redis-url, @socket.io/redis-adapter carries the broadcast to the other nodes.
//
// Configured to be as cheap as Socket.IO gets, so the comparison is fair to it: websocket
// transport only (no HTTP long-polling upgrade dance), permessage-deflate off, no HTTP
// compression, no client bundle served.
//
// Usage: node server.js --listen HOST:PORT [--redis-url redis://HOST:PORT] [--adapter classic|sharded]
//
// A client joins its room by the `room` query parameter of the handshake
// (`/socket.io/?EIO=4&transport=websocket&room=ROOM`) and sends `batch` events (and `cursor`
// events) with one binary attachment; the server emits the same event to everyone else in the
// room, on every node.
// Once listening (and connected to Redis), it prints `ready HOST:PORT` on stdout.

"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const args = { listen: "127.0.0.1:3000", redisUrl: null, adapter: "classic" };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    if (flag === "--listen") args.listen = value;
    else if (flag === "--redis-url") args.redisUrl = value;
    else if (flag === "--adapter") args.adapter = value;
    else throw new Error(`unknown flag ${flag}`);
    i++;
  }
  if (!["classic", "sharded"].includes(args.adapter)) {
    throw new Error(`--adapter must be classic or sharded, not ${args.adapter}`);
  }
  return args;
}

async function redisAdapter(url, kind) {
  const { createClient } = require("redis");
  const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
  const pub = createClient({ url });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err) => console.error(`redis: ${err.message}`));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  // The classic adapter publishes every broadcast on one channel per namespace that every node
  // pattern-subscribes to; the sharded one (Redis 7 SPUBLISH) uses one channel per room.
  return kind === "sharded" ? createShardedAdapter(pub, sub) : createAdapter(pub, sub);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const cut = args.listen.lastIndexOf(":");
  const host = args.listen.slice(0, cut);
  const port = Number(args.listen.slice(cut + 1));

  const httpServer = http.createServer((req, res) => {
    res.writeHead(404).end();
  });
  const options = {
    transports: ["websocket"],
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
  };
  if (args.redisUrl) {
    options.adapter = await redisAdapter(args.redisUrl, args.adapter);
  }
  const io = new Server(httpServer, options);

  io.on("connection", (socket) => {
    const room = socket.handshake.query.room;
    if (typeof room !== "string" || room.length === 0) {
      socket.disconnect(true);
      return;
    }
    socket.join(room);
    socket.on("batch", (batch) => {
      socket.to(room).emit("batch", batch);
    });
    // Cursor positions are ephemeral: relayed as volatile events, which Socket.IO drops for a
    // client whose connection is not ready to write rather than queueing them, as its docs
    // advise for this kind of data.
    socket.on("cursor", (position) => {
      socket.volatile.to(room).emit("cursor", position);
    });
  });

  httpServer.listen(port, host, () => {
    const addr = httpServer.address();
    console.log(`ready ${addr.address}:${addr.port}`);
  });

  const stop = () => {
    io.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

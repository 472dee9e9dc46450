"use strict";
// The world around the client: a real socket.io server and a TCP fault proxy on
// loopback, in a process of their own (real timers; the client's are fake).
//
// The driver forks this file and sends it commands over the IPC channel:
//   {id, cmd: "start", dedup}        -> {id, proxyPort}
//   {id, cmd: "release_connect"}     the held CONNECT of the newest connection
//   {id, cmd: "release_ack", mid}    the held acknowledgement owed for message mid
//   {id, cmd: "blackhole"}           every live connection: bytes in both directions
//                                    are dropped, nothing is closed (half-open)
//   {id, cmd: "reset"}               every connection is reset (RST), also black-holed ones
//   {id, cmd: "refuse", on}          new connections are refused (on) or accepted
//   {id, cmd: "state"}               -> {applied, owed, heldConnects, live, blackholed}
//   {id, cmd: "quiet"}               answered once nothing has moved for QUIET_MS
// Every answer is {id, ok: true, ...} or {id, ok: false, error}.

const http = require("node:http");
const net = require("node:net");
const { Server } = require("socket.io");

const QUIET_MS = 25;
const QUIET_DEADLINE_MS = 5000;

let lastActivity = Date.now();
const touch = () => {
  lastActivity = Date.now();
};

// -- the server ---------------------------------------------------------------------------
const httpServer = http.createServer();
// The heartbeat is the client's to time out (on its fake clock): the server pings
// rarely enough that no ping flows during a run.
const io = new Server(httpServer, {
  pingInterval: 600000,
  pingTimeout: 20000,
  transports: ["websocket"],
});
let dedup = false;
const applied = new Map(); // message id -> copies the server applied
const owed = []; // {mid, ack, socket}: acknowledgements held until a step releases them
const heldConnects = []; // {next, socket}: CONNECT packets held until handshake_ack

io.use((socket, next) => {
  touch();
  heldConnects.push({ next, socket });
});

io.on("connection", (socket) => {
  touch();
  socket.on("chat", (message, ack) => {
    touch();
    const mid = message && typeof message.id === "string" ? message.id : null;
    if (mid === null) return;
    if (!(dedup && applied.get(mid))) applied.set(mid, (applied.get(mid) || 0) + 1);
    if (typeof ack === "function") owed.push({ mid, ack, socket });
  });
});

// -- the proxy ----------------------------------------------------------------------------
const connections = new Set(); // {client, upstream, blackholed}
let refusing = false;

const proxy = net.createServer((client) => {
  touch();
  if (refusing) {
    client.resetAndDestroy();
    return;
  }
  const upstream = net.connect(httpServer.address().port, "127.0.0.1");
  const conn = { client, upstream, blackholed: false };
  connections.add(conn);
  client.on("data", (data) => {
    touch();
    if (!conn.blackholed) upstream.write(data);
  });
  upstream.on("data", (data) => {
    touch();
    if (!conn.blackholed) client.write(data);
  });
  const end = () => {
    touch();
    connections.delete(conn);
    client.destroy();
    upstream.destroy();
  };
  client.on("close", end);
  upstream.on("close", end);
  client.on("error", () => {});
  upstream.on("error", () => {});
});

// -- commands -----------------------------------------------------------------------------
function live() {
  return [...connections].filter((c) => !c.blackholed);
}

// A server-side socket is live when it is connected and its proxied connection is
// forwarding: the proxy's upstream side is the server's peer.
function isLive(socket) {
  if (!socket.connected) return false;
  const port = socket.request && socket.request.socket && socket.request.socket.remotePort;
  return live().some((c) => c.upstream.localPort === port);
}

const commands = {
  async start(msg) {
    dedup = Boolean(msg.dedup);
    await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    return { proxyPort: proxy.address().port };
  },
  release_connect() {
    const held = heldConnects.pop();
    if (!held) throw new Error("no CONNECT is held");
    heldConnects.length = 0; // older ones belong to connections the client gave up
    held.next();
    return {};
  },
  release_ack(msg) {
    for (let i = owed.length - 1; i >= 0; i--) {
      const entry = owed[i];
      if (entry.mid === msg.mid && isLive(entry.socket)) {
        owed.splice(i, 1);
        entry.ack({ ok: true });
        return {};
      }
    }
    throw new Error(`no acknowledgement is owed for ${msg.mid}`);
  },
  blackhole() {
    for (const c of connections) c.blackholed = true;
    return {};
  },
  reset() {
    for (const c of [...connections]) {
      connections.delete(c);
      c.client.resetAndDestroy();
      c.upstream.destroy();
    }
    return {};
  },
  refuse(msg) {
    refusing = Boolean(msg.on);
    return {};
  },
  state() {
    return {
      applied: Object.fromEntries(applied),
      owed: owed.filter((e) => isLive(e.socket)).map((e) => e.mid),
      heldConnects: heldConnects.length,
      live: live().length,
      blackholed: connections.size - live().length,
    };
  },
  quiet() {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const poll = () => {
        if (Date.now() - lastActivity >= QUIET_MS) resolve({});
        else if (Date.now() - started > QUIET_DEADLINE_MS) reject(new Error("never quiet"));
        else setTimeout(poll, QUIET_MS / 5);
      };
      poll();
    });
  },
};

process.on("message", async (msg) => {
  try {
    const handler = commands[msg.cmd];
    if (!handler) throw new Error(`unknown command ${msg.cmd}`);
    const answer = await handler(msg);
    process.send({ id: msg.id, ok: true, ...answer });
  } catch (err) {
    process.send({ id: msg.id, ok: false, error: String(err && err.message ? err.message : err) });
  }
});

process.on("disconnect", () => process.exit(0));

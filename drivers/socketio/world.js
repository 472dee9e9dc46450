"use strict";
// The world around the client: a real socket.io server and a TCP fault proxy on
// loopback, in a process of their own (real timers; the client's are fake).
//
// The driver forks this file and sends it commands over the IPC channel. A
// connection is named by the client's port (the proxy's peer port).
//   {id, cmd: "start"}                -> {proxyPort}
//   {id, cmd: "reset", dedup}         a new run: every connection closed, the server's
//                                     counts cleared, the network up
//   {id, cmd: "release_connect", port} the CONNECT held on that connection
//   {id, cmd: "release_ack", mid}     the newest acknowledgement owed for mid on a live
//                                     connection
//   {id, cmd: "blackhole", ports}     those connections (all without ports): bytes in
//                                     both directions are dropped, nothing is closed
//   {id, cmd: "reject", port, on}     a black-holed connection answers the next bytes
//                                     the client writes into it with a reset (RST); with
//                                     on: false it drops them again (if not reset yet)
//   {id, cmd: "reset_conns", ports}   those connections are reset (RST to the client)
//   {id, cmd: "network", up}          down: new connections are accepted and held, no
//                                     byte forwarded; up: held ones start forwarding
//   {id, cmd: "look"}                 -> {settled, conns, applied, owed}, measured once
//                                     the process has no work queued
// Every answer is {id, ok: true, ...} or {id, ok: false, error}.
//
// `settled` is true when no byte is in flight between the proxy and the server:
// every byte one side wrote the other has read, and a connection one side closed
// the other has closed too. For each connection `conns` gives what the proxy read
// from the client and wrote to it, so the driver can check the client's side the
// same way: a step is over when both answers agree twice in a row.

const http = require("node:http");
const net = require("node:net");
const { Server } = require("socket.io");

const DAY_MS = 24 * 3600 * 1000;
const CLOSE_DEADLINE_MS = 3000;

// -- the server ---------------------------------------------------------------------------
const httpServer = http.createServer();
// The heartbeat is the client's to time out (on its fake clock): the server pings
// rarely enough that no ping flows during a run, and never gives up on a handshake.
const io = new Server(httpServer, {
  pingInterval: 600000,
  pingTimeout: 20000,
  connectTimeout: DAY_MS,
  transports: ["websocket"],
});

// The server's TCP sockets by their peer (the proxy's upstream) port.
const serverSockets = new Map();
httpServer.on("connection", (socket) => {
  const entry = { socket, closed: false };
  serverSockets.set(socket.remotePort, entry);
  socket.on("close", () => {
    entry.closed = true;
  });
});

let dedup = false;
let applied = new Map(); // message id -> copies the server applied
let owed = []; // {mid, ack, socket}: acknowledgements held until a step releases them
let heldConnects = []; // {next, socket}: CONNECT packets held until handshake_ack

io.use((socket, next) => {
  heldConnects.push({ next, socket });
});

io.on("connection", (socket) => {
  socket.on("chat", (message, ack) => {
    const mid = message && typeof message.id === "string" ? message.id : null;
    if (mid === null) return;
    if (!(dedup && applied.get(mid))) applied.set(mid, (applied.get(mid) || 0) + 1);
    if (typeof ack === "function") owed.push({ mid, ack, socket });
  });
});

// -- the proxy ----------------------------------------------------------------------------
// mode: "live" forwards both ways; "held" (opened while the network is down) keeps
// the client's bytes until the network returns; "blackholed" drops every byte;
// "reset" was reset.
let conns = [];
let networkUp = true;

function connectUpstream(conn) {
  const upstream = net.connect(httpServer.address().port, "127.0.0.1");
  conn.upstream = upstream;
  upstream.on("connect", () => {
    conn.upstreamPort = upstream.localPort;
  });
  upstream.on("data", (data) => {
    if (conn.mode === "live") conn.client.write(data);
  });
  upstream.on("close", () => {
    conn.upstreamClosed = true;
    conn.client.destroy();
  });
  upstream.on("error", () => {});
  for (const data of conn.buffered) upstream.write(data);
  conn.buffered = [];
}

// A reset (RST) of the client's side. Node cannot reset a socket that is already
// shutting down (its peer sent FIN and it ended its own side: libuv answers EINVAL
// and never closes it), so such a socket is simply destroyed.
function resetConn(conn) {
  conn.mode = "reset";
  const client = conn.client;
  if (client.writableEnded || client.readableEnded) client.destroy();
  else client.resetAndDestroy();
  if (conn.upstream) conn.upstream.destroy();
}

const proxy = net.createServer((client) => {
  const conn = {
    port: client.remotePort,
    client,
    upstream: null,
    upstreamPort: null,
    upstreamClosed: false,
    mode: networkUp ? "live" : "held",
    reject: false,
    buffered: [],
    fromClient: 0,
    clientClosed: false,
  };
  conns.push(conn);
  if (conn.mode === "live") connectUpstream(conn);
  client.on("data", (data) => {
    conn.fromClient += data.length;
    if (conn.mode === "live") conn.upstream.write(data);
    else if (conn.mode === "held") conn.buffered.push(data);
    else if (conn.mode === "blackholed" && conn.reject) resetConn(conn);
  });
  client.on("close", () => {
    conn.clientClosed = true;
    if (conn.upstream) conn.upstream.destroy();
  });
  client.on("error", () => {});
});

// -- reading the world --------------------------------------------------------------------
function connOfServerSocket(socket) {
  const port = socket.request && socket.request.socket && socket.request.socket.remotePort;
  return conns.find((c) => c.upstreamPort === port) || null;
}

// A server-side socket.io socket is live when it is connected and its proxied
// connection forwards.
function isLive(socket) {
  const conn = connOfServerSocket(socket);
  return socket.connected && conn !== null && conn.mode === "live" && !conn.clientClosed;
}

// The CONNECT held for the engine.io connection a proxied connection carries, if any.
function heldIndex(conn) {
  return heldConnects.findIndex((h) => h.socket.conn.readyState === "open" && connOfServerSocket(h.socket) === conn);
}

// No byte in flight between the proxy and the server, no close half seen.
function proxySideSettled() {
  for (const conn of conns) {
    const upstream = conn.upstream;
    if (upstream === null) continue;
    if (upstream.connecting) return false;
    const server = serverSockets.get(conn.upstreamPort);
    if (conn.upstreamClosed) {
      if (server && !server.closed) return false;
      continue;
    }
    if (!server || server.closed) return false;
    if (upstream.bytesWritten !== server.socket.bytesRead) return false;
    if (server.socket.bytesWritten !== upstream.bytesRead) return false;
  }
  return true;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

function waitUntil(done, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (done()) resolve({});
      else if (Date.now() - started > CLOSE_DEADLINE_MS) reject(new Error(`never ${what}`));
      else setImmediate(poll);
    };
    poll();
  });
}

// -- commands -----------------------------------------------------------------------------
function byPorts(ports) {
  return ports === undefined ? conns : conns.filter((c) => ports.includes(c.port));
}

const commands = {
  async start() {
    await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    return { proxyPort: proxy.address().port };
  },
  async reset(msg) {
    for (const conn of conns) resetConn(conn);
    await waitUntil(
      () => [...serverSockets.values()].every((s) => s.closed) && conns.every((c) => c.clientClosed),
      "closed the last run's connections",
    );
    serverSockets.clear();
    conns = [];
    networkUp = true;
    dedup = Boolean(msg.dedup);
    applied = new Map();
    owed = [];
    heldConnects = [];
    return {};
  },
  release_connect(msg) {
    const conn = conns.find((c) => c.port === msg.port);
    const i = conn === undefined ? -1 : heldIndex(conn);
    if (i < 0) throw new Error(`no CONNECT is held on connection ${msg.port}`);
    const [held] = heldConnects.splice(i, 1);
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
  blackhole(msg) {
    for (const conn of byPorts(msg.ports)) {
      if (conn.mode === "live" || conn.mode === "held") conn.mode = "blackholed";
    }
    return {};
  },
  reject(msg) {
    const conn = conns.find((c) => c.port === msg.port && c.mode === "blackholed");
    if (msg.on === false) {
      if (conn !== undefined) conn.reject = false;
      return {};
    }
    if (conn === undefined) throw new Error(`no black-holed connection ${msg.port}`);
    conn.reject = true;
    return {};
  },
  reset_conns(msg) {
    for (const conn of byPorts(msg.ports)) if (conn.mode !== "reset") resetConn(conn);
    return {};
  },
  network(msg) {
    networkUp = Boolean(msg.up);
    if (networkUp) {
      for (const conn of conns) {
        if (conn.mode !== "held" || conn.clientClosed) continue;
        conn.mode = "live";
        connectUpstream(conn);
      }
    }
    return {};
  },
  async look() {
    await turn();
    await turn();
    return {
      settled: proxySideSettled(),
      conns: conns.map((c) => ({
        port: c.port,
        mode: c.mode,
        closed: c.clientClosed,
        fromClient: c.fromClient,
        toClient: c.client.bytesWritten,
        connect: heldIndex(c) >= 0,
      })),
      applied: Object.fromEntries(applied),
      owed: owed.filter((e) => isLive(e.socket)).map((e) => e.mid),
    };
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

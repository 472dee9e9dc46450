"use strict";
// An fsm driver for the real socket.io-client: JSON lines on stdin/stdout
// (fsm schema driver). The client runs here, on a fake clock; the server and the
// fault proxy run in a child process (world.js) on real timers.
//
//   node driver.js --client 4.7|4.8 [--retries N] [--ack-timeout MS] [--dedup]
//
// How each step is made real. A step the world cannot make here is refused; what
// the library then does is what the step observes, never decided here.
//   send m  socket.emit("chat", {id: m, ...}, ack), after making the world answer
//           as the outcome says:
//     ws_delivered     the client is connected and its connection forwards
//     ws_vanished      the client is connected and its connection is dead
//                      (black-holed): the bytes go nowhere
//     ws_raised        as ws_vanished, and the dead connection answers the bytes
//                      written during this step with a reset (RST): the one way a
//                      write fails on Node, where the ws package never throws from
//                      send() on an open socket and reports the failure as an error
//                      event instead (a send that waits in the retry queue writes
//                      nothing, and later writes vanish)
//     deadline_passed  the client is connected, its connection is dead, and the app
//                      was frozen past the heartbeat deadline since it opened
//     buffered, queued the client is not connected
//   connect            socket.connect() the first time, then the manager's
//                      reconnection timer fires
//   handshake_ack      the server releases the CONNECT it holds on the client's
//                      connection
//   handshake_fail     the handshake times out: the manager's connect timeout fires
//                      (engine.io not open yet), else the heartbeat (open, no CONNECT)
//   app_background     the app is frozen: every connection is black-holed and no
//                      timer runs until app_foreground
//   app_foreground     wall time jumps past the heartbeat deadline; still no timer
//                      has run (the frozen-process case of socket.io#5135)
//   connection_dropped the client's live connection is black-holed (half-open)
//   network_lost       new connections are held, nothing forwarded; the live ones
//                      are reset, and while the client is not connected every one
//                      (a handshake under way fails)
//   network_restored   held connections start forwarding
//   socket_error       the client's dead connection is reset, so the client is told
//   ping_timeout       the heartbeat timer (pingInterval + pingTimeout) fires
//   done m             the server releases the acknowledgement it owes for m
//   ack_timeout m      m's acknowledgement timer (ackTimeout) fires, alone
// After each step the driver waits, bounded, until the world is settled: every
// byte either side of the proxy wrote has been read, every close seen by both
// ends, no zero-delay timer left; then it observes.

const path = require("node:path");
const net = require("node:net");
const readline = require("node:readline");
const { fork } = require("node:child_process");
const FakeTimers = require("@sinonjs/fake-timers");

const PROTOCOL = 1;
const CLIENTS = { "4.7": "socket.io-client-4.7", "4.8": "socket.io-client-4.8" };
// The server's heartbeat, as the client learns it in the handshake (world.js).
const PING_INTERVAL = 600000;
const PING_TIMEOUT = 20000;
const RECONNECTION_DELAY = 1000;
const CONNECT_TIMEOUT = 20000;
// Bounds on real time: one answer of the world, one step's settling.
const CALL_LIMIT_MS = 5000;
const SETTLE_LIMIT_MS = 5000;
const EXIT_LIMIT_MS = 2000;

// The driver's own timers stay real; the client's are faked per run.
const realSetTimeout = setTimeout;
const realClearTimeout = clearTimeout;
const nowMs = () => Number(process.hrtime.bigint() / 1000000n);

// -- options ------------------------------------------------------------------------------
function parseArgs(argv) {
  const opts = { client: "4.8", retries: 0, ackTimeout: undefined, dedup: false };
  const whole = (text, name) => {
    if (!/^[0-9]{1,9}$/.test(text)) throw new Error(`${name} must be a whole number`);
    return Number(text);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === "--client") opts.client = value();
    else if (arg === "--retries") opts.retries = whole(value(), "--retries");
    else if (arg === "--ack-timeout") opts.ackTimeout = whole(value(), "--ack-timeout");
    else if (arg === "--dedup") opts.dedup = true;
    else throw new Error(`unknown option ${arg}`);
  }
  if (!(opts.client in CLIENTS)) throw new Error(`--client must be one of ${Object.keys(CLIENTS)}`);
  if (opts.ackTimeout === 0) throw new Error("--ack-timeout must be a positive number of milliseconds");
  return opts;
}

// -- every TCP connection the client opens, for settling (observed, never touched) --------
let tracked = [];
const socketConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function connect(...args) {
  if (!tracked.some((t) => t.socket === this)) {
    const entry = { socket: this, port: undefined, closed: false };
    this.once("connect", () => {
      entry.port = this.localPort;
    });
    this.once("close", () => {
      entry.closed = true;
    });
    tracked.push(entry);
  }
  return socketConnect.apply(this, args);
};

// -- the world (server and proxy) in a child process -------------------------------------
class World {
  constructor() {
    const stdio = ["ignore", "ignore", "inherit", "ipc"];
    this.child = fork(path.join(__dirname, "world.js"), [], { stdio });
    this.pending = new Map();
    this.next = 0;
    this.exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.on("error", () => {}); // a send after it died: the call is rejected below
    this.child.on("message", (msg) => {
      const waiter = this.pending.get(msg.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      realClearTimeout(waiter.timer);
      if (msg.ok) waiter.resolve(msg);
      else waiter.reject(new Error(`world: ${msg.error}`));
    });
    this.child.on("exit", (code, signal) => {
      for (const waiter of this.pending.values()) {
        realClearTimeout(waiter.timer);
        waiter.reject(new Error(`the world exited (${signal || code})`));
      }
      this.pending.clear();
    });
  }

  call(cmd, fields = {}) {
    const id = this.next++;
    if (!this.child.connected) return Promise.reject(new Error(`the world is gone (${cmd})`));
    return new Promise((resolve, reject) => {
      const timer = realSetTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the world did not answer ${cmd} within ${CALL_LIMIT_MS} ms`));
      }, CALL_LIMIT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.child.send({ id, cmd, ...fields });
    });
  }

  // End the child and wait, bounded, until it is reaped.
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    let timer;
    const limit = new Promise((resolve) => (timer = realSetTimeout(resolve, EXIT_LIMIT_MS)));
    await Promise.race([this.exited, limit]);
    realClearTimeout(timer);
  }
}

class Refusal extends Error {}

const refuse = (why) => {
  throw new Refusal(why);
};

// -- one run: a client and its fake clock, in the shared world ------------------------------
class Run {
  constructor(opts, world, proxyPort, messages) {
    this.opts = opts;
    this.world = world;
    this.proxyPort = proxyPort;
    this.frozen = false;
    this.network = true;
    this.expiredEngine = null; // the engine the app was frozen past its heartbeat deadline
    this.rejecting = null; // the connection that answers this step's write with a reset
    this.ackTimers = new Map(); // fake timer id -> message id, for every acknowledgement timer
    this.messages = Array.from({ length: messages }, (_, i) => ({
      mid: `m${i + 1}`,
      emitted: false,
      outcome: null, // "ok" | "error"
    }));
  }

  async start() {
    await this.world.call("reset", { dedup: this.opts.dedup });
    tracked = [];
    this.clock = FakeTimers.install({
      toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"],
      now: Date.now(),
    });
    const { io } = require(CLIENTS[this.opts.client]);
    const options = {
      autoConnect: false,
      forceNew: true,
      transports: ["websocket"],
      reconnectionDelay: RECONNECTION_DELAY,
      reconnectionDelayMax: RECONNECTION_DELAY,
      randomizationFactor: 0,
      timeout: CONNECT_TIMEOUT,
    };
    if (this.opts.retries > 0) options.retries = this.opts.retries;
    if (this.opts.ackTimeout !== undefined) options.ackTimeout = this.opts.ackTimeout;
    this.socket = io(`http://127.0.0.1:${this.proxyPort}`, options);
    // Note which acknowledgement timer each emit starts (the queue of `retries`
    // emits again on its own): observed, the library's behaviour is unchanged.
    const socket = this.socket;
    const emit = socket.emit;
    socket.emit = (...args) => {
      const before = new Set(this.timers().keys());
      const result = emit.apply(socket, args);
      const mid = args[1] && args[1].id;
      for (const [id, timer] of this.timers()) {
        if (!before.has(id) && timer.delay === this.opts.ackTimeout) this.ackTimers.set(id, mid);
      }
      return result;
    };
  }

  // Close the client and every connection it opened while its clock is still
  // installed, so nothing of this run touches the next one.
  async stop() {
    if (this.socket) {
      this.socket.io.reconnection(false);
      this.socket.disconnect();
    }
    await this.world.call("reset", { dedup: this.opts.dedup });
    const started = nowMs();
    while (tracked.some((t) => !t.closed)) {
      if (nowMs() - started > SETTLE_LIMIT_MS) throw new Error("the client's connections did not close");
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (this.clock) this.clock.uninstall();
  }

  // -- what the driver reads of the client -----------------------------------------------
  engine() {
    const engine = this.socket.io.engine;
    return engine && engine.readyState !== "closed" ? engine : null;
  }

  // The proxy's record of the connection the client's engine uses, if any.
  current(look) {
    const engine = this.engine();
    const ws = engine && engine.transport && engine.transport.ws;
    const socket = ws && (ws._socket || (ws._req && ws._req.socket));
    const entry = socket && tracked.find((t) => t.socket === socket);
    if (!entry || entry.closed) return null;
    return look.conns.find((c) => c.port === entry.port && !c.closed) || null;
  }

  // The fake clock's pending timers by id (fake-timers keeps them in a Map it makes
  // with the first timer).
  timers() {
    return this.clock.timers || new Map();
  }

  heartbeat() {
    const engine = this.engine();
    const handle = engine && (engine._pingTimeoutTimer || engine.pingTimeoutTimer);
    return handle === undefined || handle === null ? null : this.timers().get(Number(handle)) || null;
  }

  timersOf(delay) {
    return [...this.timers().values()]
      .filter((t) => t.delay === delay && !this.ackTimers.has(t.id))
      .sort((a, b) => a.callAt - b.callAt || a.id - b.id);
  }

  // Run one fake timer now, alone: no other timer runs, no time passes.
  fire(timer) {
    this.clock.clearTimeout(timer.id);
    this.ackTimers.delete(timer.id);
    timer.func(...(timer.args || []));
  }

  awake(what) {
    if (this.frozen) refuse(`the app is frozen in the background: no ${what} runs`);
  }

  // -- steps ------------------------------------------------------------------------------
  async apply(stimulus, mid, outcome) {
    const look = await this.world.call("look");
    switch (stimulus) {
      case "send":
        return this.send(this.message(mid), outcome, look);
      case "connect":
        return this.connect();
      case "handshake_ack": {
        const conn = this.current(look);
        if (!conn || !conn.connect) refuse("no CONNECT is waiting for the server on the client's connection");
        return this.world.call("release_connect", { port: conn.port });
      }
      case "handshake_fail":
        return this.handshakeFail();
      case "app_background":
        if (this.frozen) refuse("the app is already in the background");
        this.frozen = true;
        return this.world.call("blackhole", {});
      case "app_foreground":
        if (!this.frozen) refuse("the app is in the foreground");
        this.frozen = false;
        // Wall time moved on while the process was frozen; no timer has run yet.
        this.clock.setSystemTime(Date.now() + PING_INTERVAL + PING_TIMEOUT + 1);
        if (this.engine() && this.engine().readyState === "open") this.expiredEngine = this.engine();
        return undefined;
      case "connection_dropped": {
        const conn = this.current(look);
        if (!conn || conn.mode !== "live") refuse("the client has no live connection to drop");
        return this.world.call("blackhole", { ports: [conn.port] });
      }
      case "network_lost": {
        if (!this.network) refuse("the network is already down");
        this.network = false;
        await this.world.call("network", { up: false });
        const doomed = look.conns.filter((c) => !c.closed && (c.mode === "live" || !this.socket.connected));
        return this.world.call("reset_conns", { ports: doomed.map((c) => c.port) });
      }
      case "network_restored":
        if (this.network) refuse("the network is up");
        this.network = true;
        return this.world.call("network", { up: true });
      case "socket_error": {
        const conn = this.current(look);
        if (!conn || conn.mode !== "blackholed") refuse("the client's connection is not dead");
        return this.world.call("reset_conns", { ports: [conn.port] });
      }
      case "ping_timeout": {
        this.awake("timer");
        const timer = this.heartbeat();
        if (!timer) refuse("no heartbeat timer is running");
        return this.fire(timer);
      }
      case "done": {
        const m = this.message(mid);
        if (!look.owed.includes(m.mid)) {
          refuse(`the server owes no acknowledgement for ${m.mid} on a live connection`);
        }
        return this.world.call("release_ack", { mid: m.mid });
      }
      case "ack_timeout": {
        this.awake("timer");
        const m = this.message(mid);
        const timers = [...this.ackTimers]
          .filter(([id, owner]) => owner === m.mid && this.timers().has(id))
          .map(([id]) => this.timers().get(id))
          .sort((a, b) => a.callAt - b.callAt || a.id - b.id);
        if (timers.length === 0) refuse(`no acknowledgement timer is running for ${m.mid}`);
        return this.fire(timers[0]); // the one due first on a real clock
      }
      default:
        return refuse(`${stimulus} is not supported`);
    }
  }

  message(mid) {
    const m = this.messages.find((x) => x.mid === mid);
    if (!m) refuse(`no message ${mid}`);
    return m;
  }

  async send(m, outcome, look) {
    if (this.frozen) refuse("the app is in the background");
    if (m.emitted) refuse(`${m.mid} was already sent`);
    const connected = this.socket.connected;
    const conn = this.current(look);
    const dead = conn !== null && conn.mode === "blackholed";
    switch (outcome) {
      case "buffered":
      case "queued":
        if (connected) refuse("the client is connected");
        break;
      case "ws_delivered":
        if (!connected || !conn || conn.mode !== "live") {
          refuse("a delivered send needs the client connected over a live connection");
        }
        break;
      case "ws_vanished":
        if (!connected || !dead) refuse("a vanished send needs the client connected over a dead connection");
        break;
      case "ws_raised":
        if (!connected || !dead) refuse("a raised send needs the client connected over a dead connection");
        // Only this step's write is answered with a reset: a send that waits in the
        // retry queue writes nothing now, and a later write into the connection
        // vanishes (observe() drops the reset again).
        await this.world.call("reject", { port: conn.port });
        this.rejecting = conn.port;
        break;
      case "deadline_passed":
        if (!connected || !dead || this.expiredEngine !== this.engine()) {
          refuse("the heartbeat deadline has not passed on a connection the client trusts");
        }
        break;
      default:
        refuse(`the world cannot answer a send with ${outcome}`);
    }
    m.emitted = true;
    const payload = { id: m.mid, body: `text of ${m.mid}` };
    const withError = this.opts.retries > 0 || this.opts.ackTimeout !== undefined;
    this.socket.emit("chat", payload, (...args) => {
      m.outcome = withError && args[0] ? "error" : "ok";
    });
    return undefined;
  }

  connect() {
    this.awake("timer");
    if (!this.socket.active) {
      this.socket.connect();
      return undefined;
    }
    const timer = this.socket.io._reconnecting && this.timersOf(RECONNECTION_DELAY)[0];
    if (!timer) refuse("the client is not waiting to connect");
    return this.fire(timer);
  }

  handshakeFail() {
    this.awake("timer");
    if (this.socket.connected) refuse("the client is connected");
    const engine = this.engine();
    if (!engine) refuse("no handshake is under way");
    const timer = engine.readyState === "open" ? this.heartbeat() : this.timersOf(CONNECT_TIMEOUT)[0];
    if (!timer) refuse("no handshake timer is running");
    return this.fire(timer);
  }

  // -- settling and observing --------------------------------------------------------------
  // Timers due now (a zero delay), in order, each alone.
  runDue() {
    for (let n = 0; n < 1000; n++) {
      const due = [...this.timers().values()]
        .filter((t) => t.callAt <= this.clock.now)
        .sort((a, b) => a.callAt - b.callAt || a.id - b.id);
      if (due.length === 0) return;
      this.fire(due[0]);
    }
    throw new Error("zero-delay timers keep coming");
  }

  // Whether everything the client wrote the proxy has read and everything the proxy
  // wrote the client has read, and a connection one side closed the other has too.
  clientSettled(look) {
    for (const entry of tracked) {
      const conn = entry.port === undefined ? undefined : look.conns.find((c) => c.port === entry.port);
      if (entry.closed) {
        if (conn && !conn.closed) return false;
        continue;
      }
      if (entry.socket.connecting || !conn || conn.closed) return false;
      if (entry.socket.bytesWritten !== conn.fromClient) return false;
      if (entry.socket.bytesRead !== conn.toClient) return false;
    }
    return true;
  }

  fingerprint(look) {
    const queue = this.socket._queue || [];
    return JSON.stringify([
      look.conns,
      tracked.map((t) => [t.port, t.closed, t.socket.bytesWritten, t.socket.bytesRead]),
      [...this.timers().keys()],
      this.socket.connected,
      this.socket.sendBuffer.length,
      queue.map((p) => [p.tryCount, p.pending]),
      this.messages.map((m) => m.outcome),
      look.applied,
      look.owed,
    ]);
  }

  async settle() {
    const started = nowMs();
    let previous = null;
    for (;;) {
      await new Promise((resolve) => setImmediate(resolve));
      this.runDue();
      const look = await this.world.call("look");
      const settled = look.settled && this.clientSettled(look);
      const now = settled ? this.fingerprint(look) : null;
      if (settled && now === previous) return look;
      previous = now;
      if (nowMs() - started > SETTLE_LIMIT_MS) {
        throw new Error(`the world did not settle within ${SETTLE_LIMIT_MS} ms`);
      }
    }
  }

  async observe() {
    const { applied } = await this.settle();
    if (this.rejecting !== null) {
      await this.world.call("reject", { port: this.rejecting, on: false });
      this.rejecting = null;
    }
    const queue = this.socket._queue || [];
    const buffered = (m) => this.socket.sendBuffer.some((p) => p.data && p.data[1] && p.data[1].id === m.mid);
    return {
      connected: this.socket.connected,
      messages: this.messages.map((m) => {
        const queued = queue.find((p) => p.args[1] && p.args[1].id === m.mid);
        let state;
        if (!m.emitted) state = "unsent";
        else if (m.outcome === "ok") state = "confirmed";
        else if (m.outcome === "error") state = "failed";
        else if (queued && !queued.pending) state = "pending";
        else if (buffered(m)) state = "pending";
        else state = "sent";
        return { state, held: Boolean(queued), server: Math.min(applied[m.mid] || 0, 2) };
      }),
    };
  }
}

// -- the protocol loop --------------------------------------------------------------------
function hello(opts, id) {
  const version = require(`${CLIENTS[opts.client]}/package.json`).version;
  const stimuli = [
    "send", "connect", "handshake_ack", "handshake_fail", "app_background", "app_foreground",
    "network_lost", "network_restored", "socket_error", "connection_dropped", "ping_timeout", "done",
  ];
  if (opts.ackTimeout !== undefined) stimuli.push("ack_timeout");
  return {
    type: "hello",
    id,
    protocol: PROTOCOL,
    name:
      `socket.io-client ${version}` +
      (opts.retries ? `, retries ${opts.retries}` : "") +
      (opts.ackTimeout !== undefined ? `, ackTimeout ${opts.ackTimeout}` : "") +
      (opts.dedup ? ", server de-duplicates" : ""),
    stimuli,
    outcomes: ["ws_delivered", "ws_raised", "ws_vanished", "buffered", "queued", "deadline_passed"],
    fields: ["connected", "state", "held", "server"],
  };
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`driver: ${err.message}\n`);
    process.exit(2);
  }
  const out = (answer) => process.stdout.write(`${JSON.stringify(answer)}\n`);
  let world = null;
  let proxyPort = null;
  let run = null;
  const finish = async (code) => {
    if (run && world) await run.stop().catch(() => {});
    if (world) await world.stop();
    process.exit(code);
  };
  process.on("SIGTERM", () => finish(143));
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    let req;
    try {
      req = JSON.parse(line);
    } catch {
      process.stderr.write("driver: a request that is not JSON\n");
      await finish(2);
    }
    const { id } = req;
    try {
      if (req.type === "hello") {
        out(hello(opts, id));
      } else if (req.type === "reset") {
        if (run) await run.stop();
        run = null;
        if (world === null) {
          world = new World();
          ({ proxyPort } = await world.call("start"));
        }
        run = new Run(opts, world, proxyPort, req.messages);
        await run.start();
        out({ type: "observation", id, observation: await run.observe() });
      } else if (req.type === "apply") {
        if (!run) throw new Error("apply before reset");
        try {
          await run.apply(req.stimulus, req.message, req.outcome);
        } catch (err) {
          if (err instanceof Refusal) {
            out({ type: "refused", id, reason: err.message });
            continue;
          }
          throw err;
        }
        out({ type: "observation", id, observation: await run.observe() });
      } else if (req.type === "close") {
        out({ type: "closed", id });
        await finish(0);
      } else {
        out({ type: "error", id, reason: `unknown request ${req.type}` });
      }
    } catch (err) {
      out({ type: "error", id, reason: String(err && err.stack ? err.stack : err) });
    }
  }
  await finish(0);
}

main();

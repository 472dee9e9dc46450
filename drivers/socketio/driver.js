"use strict";
// An fsm driver for the real socket.io-client: JSON lines on stdin/stdout
// (fsm schema driver). The client runs here, on a fake clock; the server and the
// fault proxy run in a child process (world.js) on real timers.
//
//   node driver.js --client 4.8 [--retries N] [--ack-timeout MS] [--dedup]
//
// How each step is made real:
//   send m               socket.emit("chat", {id: m, ...}, ack); the outcome says what
//                        the world must be like (ws_delivered: the connection forwards;
//                        ws_vanished: it is black-holed)
//   connect              socket.connect() the first time, then the manager's
//                        reconnection timer fires
//   handshake_ack        the server releases the CONNECT it held
//   app_background       the app is frozen: every connection is black-holed and no
//                        timer runs (as iOS suspends a backgrounded app)
//   app_foreground       wall time jumps past the heartbeat deadline; still no timer
//                        has run (the frozen-process case of socket.io#5135)
//   connection_dropped   the live connection is black-holed (half-open)
//   network_lost         every connection is reset and new ones are refused
//   network_restored     new connections are accepted again
//   socket_error         the dead connection is reset, so the client is told
//   ping_timeout         the heartbeat timer (pingInterval + pingTimeout) fires
//   done m               the server releases the acknowledgement it owes for m
// After each step the driver waits, bounded, until nothing moves (no byte through
// the proxy for a few milliseconds, no zero-delay timer left), then observes.

const path = require("node:path");
const readline = require("node:readline");
const { fork } = require("node:child_process");
const FakeTimers = require("@sinonjs/fake-timers");

const PROTOCOL = 1;
const CLIENTS = { "4.7": "socket.io-client-4.7", "4.8": "socket.io-client-4.8" };
// The server's heartbeat, as the client learns it in the handshake (world.js).
const PING_INTERVAL = 600000;
const PING_TIMEOUT = 20000;
const RECONNECTION_DELAY = 1000;

// -- options ------------------------------------------------------------------------------
function parseArgs(argv) {
  const opts = { client: "4.8", retries: 0, ackTimeout: undefined, dedup: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === "--client") opts.client = value();
    else if (arg === "--retries") opts.retries = Number.parseInt(value(), 10);
    else if (arg === "--ack-timeout") opts.ackTimeout = Number.parseInt(value(), 10);
    else if (arg === "--dedup") opts.dedup = true;
    else throw new Error(`unknown option ${arg}`);
  }
  if (!(opts.client in CLIENTS)) throw new Error(`--client must be one of ${Object.keys(CLIENTS)}`);
  if (!(opts.retries >= 0)) throw new Error("--retries must be a whole number");
  if (opts.ackTimeout !== undefined && !(opts.ackTimeout > 0)) {
    throw new Error("--ack-timeout must be a positive number of milliseconds");
  }
  return opts;
}

// -- the world (server and proxy) in a child process -------------------------------------
class World {
  constructor() {
    this.child = fork(path.join(__dirname, "world.js"), [], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    this.pending = new Map();
    this.next = 0;
    this.child.on("message", (msg) => {
      const waiter = this.pending.get(msg.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.ok) waiter.resolve(msg);
      else waiter.reject(new Error(msg.error));
    });
    this.child.on("exit", (code) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`world exited (${code})`));
      this.pending.clear();
    });
  }

  call(cmd, fields = {}) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ id, cmd, ...fields });
    });
  }

  stop() {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

class Refusal extends Error {}

// -- one run: a client, its fake clock and a fresh world -----------------------------------
class Run {
  constructor(opts, messages) {
    this.opts = opts;
    this.messages = Array.from({ length: messages }, (_, i) => ({
      mid: `m${i + 1}`,
      emitted: false,
      ackId: null,
      outcome: null, // "ok" | "error"
    }));
  }

  async start() {
    this.world = new World();
    const { proxyPort } = await this.world.call("start", { dedup: this.opts.dedup });
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
    };
    if (this.opts.retries > 0) options.retries = this.opts.retries;
    if (this.opts.ackTimeout !== undefined) options.ackTimeout = this.opts.ackTimeout;
    this.socket = io(`http://127.0.0.1:${proxyPort}`, options);
  }

  stop() {
    if (this.socket) {
      this.socket.io.reconnection(false);
      this.socket.disconnect();
    }
    if (this.clock) this.clock.uninstall();
    if (this.world) this.world.stop();
  }

  // -- steps ------------------------------------------------------------------------------
  async apply(stimulus, mid, outcome) {
    const state = await this.world.call("state");
    switch (stimulus) {
      case "send":
        return this.send(this.message(mid), outcome, state);
      case "connect":
        return this.connect();
      case "handshake_ack":
        if (state.heldConnects === 0) throw new Refusal("no handshake is waiting for the server");
        return this.world.call("release_connect");
      case "app_background":
        if (this.frozen) throw new Refusal("the app is already in the background");
        this.frozen = true;
        return this.world.call("blackhole");
      case "app_foreground":
        if (!this.frozen) throw new Refusal("the app is in the foreground");
        this.frozen = false;
        // Wall time moved on while the process was frozen; no timer has run yet.
        this.clock.setSystemTime(Date.now() + PING_INTERVAL + PING_TIMEOUT + 1);
        return undefined;
      case "connection_dropped":
        if (state.live === 0) throw new Refusal("no live connection to drop");
        return this.world.call("blackhole");
      case "network_lost":
        await this.world.call("refuse", { on: true });
        return this.world.call("reset");
      case "network_restored":
        return this.world.call("refuse", { on: false });
      case "socket_error":
        if (state.blackholed === 0) throw new Refusal("no dead connection to report");
        return this.world.call("reset");
      case "ping_timeout":
        return this.fire(PING_INTERVAL + PING_TIMEOUT, "heartbeat");
      case "done": {
        const m = this.message(mid);
        if (!state.owed.includes(m.mid)) throw new Refusal(`the server owes no acknowledgement for ${m.mid}`);
        return this.world.call("release_ack", { mid: m.mid });
      }
      default:
        throw new Refusal(`${stimulus} is not supported`);
    }
  }

  message(mid) {
    const m = this.messages.find((x) => x.mid === mid);
    if (!m) throw new Refusal(`no message ${mid}`);
    return m;
  }

  send(m, outcome, state) {
    if (m.emitted) throw new Refusal(`${m.mid} was already sent`);
    if (outcome === "ws_delivered" && state.live === 0) {
      throw new Refusal("a delivered send needs a live connection");
    }
    if (outcome === "ws_vanished" && state.blackholed === 0) {
      throw new Refusal("a vanished send needs a dead connection");
    }
    m.emitted = true;
    m.ackId = this.socket.ids;
    const payload = { id: m.mid, body: `text of ${m.mid}` };
    const withError = this.opts.retries > 0 || this.opts.ackTimeout !== undefined;
    this.socket.emit("chat", payload, (...args) => {
      if (withError && args[0]) m.outcome = "error";
      else m.outcome = "ok";
    });
    return undefined;
  }

  connect() {
    const manager = this.socket.io;
    if (!this.socket.active) {
      this.socket.connect();
      return undefined;
    }
    if (manager._reconnecting) return this.fire(RECONNECTION_DELAY, "reconnection");
    throw new Refusal("the client is not waiting to connect");
  }

  // Fire the earliest pending timer of one kind, alone: each kind has its own delay
  // (heartbeat, reconnection, acknowledgement), so a step moves exactly one of them
  // and no other timer runs as a side effect.
  fire(delay, what) {
    const due = [...this.clock.timers.values()]
      .filter((t) => t.delay === delay)
      .sort((a, b) => a.callAt - b.callAt || a.id - b.id);
    if (due.length === 0) throw new Refusal(`no ${what} timer is running`);
    const timer = due[0];
    this.clock.clearTimeout(timer.id);
    timer.func(...(timer.args || []));
    return undefined;
  }

  // -- observing --------------------------------------------------------------------------
  async settle() {
    for (let round = 0; round < 50; round++) {
      await new Promise((resolve) => setImmediate(resolve));
      this.clock.tick(0);
      await this.world.call("quiet");
      await new Promise((resolve) => setImmediate(resolve));
      if (this.clock.countTimers() === this.timersBefore) break;
      this.timersBefore = this.clock.countTimers();
    }
  }

  async observe() {
    await this.settle();
    const { applied } = await this.world.call("state");
    const queue = this.socket._queue || [];
    const buffered = (m) =>
      this.socket.sendBuffer.some((p) => p.data && p.data[1] && p.data[1].id === m.mid);
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
        return {
          state,
          held: Boolean(queued),
          server: Math.min(applied[m.mid] || 0, 2),
        };
      }),
    };
  }
}

// -- the protocol loop --------------------------------------------------------------------
async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`driver: ${err.message}\n`);
    process.exit(2);
  }
  const out = (answer) => process.stdout.write(`${JSON.stringify(answer)}\n`);
  let run = null;
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    let req;
    try {
      req = JSON.parse(line);
    } catch {
      process.stderr.write("driver: a request that is not JSON\n");
      process.exit(2);
    }
    const { id } = req;
    try {
      if (req.type === "hello") {
        out({
          type: "hello",
          id,
          protocol: PROTOCOL,
          name: `socket.io-client ${require(`${CLIENTS[opts.client]}/package.json`).version}` +
            (opts.retries ? `, retries ${opts.retries}` : "") +
            (opts.ackTimeout !== undefined ? `, ackTimeout ${opts.ackTimeout}` : "") +
            (opts.dedup ? ", server de-duplicates" : ""),
          stimuli: [
            "send", "connect", "handshake_ack", "app_background", "app_foreground",
            "network_lost", "network_restored", "socket_error", "connection_dropped",
            "ping_timeout", "done",
          ],
          outcomes: ["ws_delivered", "ws_vanished"],
          fields: ["connected", "state", "held", "server"],
        });
      } else if (req.type === "reset") {
        if (run) run.stop();
        run = new Run(opts, req.messages);
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
        if (run) run.stop();
        out({ type: "closed", id });
        process.exit(0);
      } else {
        out({ type: "error", id, reason: `unknown request ${req.type}` });
      }
    } catch (err) {
      out({ type: "error", id, reason: String(err && err.stack ? err.stack : err) });
    }
  }
  if (run) run.stop();
}

main();

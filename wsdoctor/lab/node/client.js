#!/usr/bin/env node
// The real socket.io-client (4.x, or 2.x with --client 2), run once: connect, report, leave.
//
//   node client.js --url URL [--path P] [--transports polling,websocket] [--token JWT] [--ca FILE]
//                  [--token-in auth|query] [--client 4|2] [--timeout S] [--upgrade-wait S] [--hold S] [--ack whoami ...]
//
// URL is what the application passes to io(): its path part is the namespace. The token travels
// the way each client version sends it: the CONNECT `auth` payload (4.x), the query (2.x). TLS is
// verified with --ca (never turned off). Prints exactly one JSON line on stdout:
//   {"client", "connected", "error": {message, data, description, type} | null, "id",
//    "transport_at_open", "transport_at_connect", "transport", "upgraded", "upgrade_error", "instance", "acks": {name: value},
//    "disconnect": {reason, description, at} | null, "connected_at", "upgraded_at", "elapsed"}
// Times are seconds since start. Reconnection is off: one attempt, the first outcome is the answer.
"use strict";

const fs = require("fs");

function parseArgs(argv) {
  const out = { ack: [], client: "4", timeout: "5", hold: "0", upgradeWait: "3", transports: "polling,websocket" };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`);
    const key = arg.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const value = argv[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    if (key === "ack") out.ack.push(value);
    else out[key] = value;
  }
  if (!out.url) throw new Error("--url is required");
  return out;
}

const started = Date.now();
const now = () => Math.round(Date.now() - started) / 1000;

function plain(value) {
  // A JSON-safe copy of an error's extra fields (descriptions can be Errors or XHR objects).
  if (value === undefined || value === null) return null;
  if (typeof value === "number" || typeof value === "string" || typeof value === "boolean") return value;
  if (value instanceof Error) return value.message;
  if (typeof value === "object" && typeof value.message === "string") return value.message; // ws ErrorEvent
  try {
    return JSON.parse(JSON.stringify(value));
  } catch {
    return String(value);
  }
}

function describeError(err) {
  if (err === undefined || err === null) return { message: String(err), data: null, description: null, type: null };
  if (typeof err !== "object") return { message: String(err), data: null, description: null, type: null };
  return {
    message: err.message !== undefined ? String(err.message) : JSON.stringify(err),
    data: plain(err.data),
    description: plain(err.description),
    type: err.type !== undefined ? String(err.type) : null,
  };
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`client.js: ${e.message}\n`);
    process.exit(2);
  }
  const v2 = opts.client === "2";
  const pkg = v2 ? "socket.io-client-v2" : "socket.io-client";
  const version = require(`${pkg}/package.json`).version;
  const result = {
    client: `socket.io-client ${version}`,
    connected: false,
    error: null,
    id: null,
    transport_at_open: null,
    transport_at_connect: null,
    transport: null,
    upgraded: false,
    upgrade_error: null,
    instance: null,
    acks: {},
    disconnect: null,
    connected_at: null,
    upgraded_at: null,
    elapsed: null,
  };
  const timeoutMs = Math.round(parseFloat(opts.timeout) * 1000);
  const options = {
    transports: opts.transports.split(",").filter(Boolean),
    reconnection: false,
    forceNew: true,
    timeout: timeoutMs,
  };
  if (opts.path) options.path = opts.path;
  if (opts.ca) options.ca = fs.readFileSync(opts.ca);
  if (opts.token) {
    // --token-in query: a v4 client still sending the token the 2.x way (an app that only upgraded its client).
    if (v2 || opts.tokenIn === "query") options.query = { token: opts.token };
    else options.auth = { token: opts.token };
  }
  const io = v2 ? require(pkg) : require(pkg).io;
  const socket = io(opts.url, options);
  const engine = () => socket.io.engine;
  const upgradeSettled = [];
  const settleUpgrade = () => upgradeSettled.splice(0).forEach((resolve) => resolve());
  // The Engine.IO session opens before the Socket.IO CONNECT is answered, and on loopback the upgrade
  // to websocket can finish before "connect": watch the engine from its "open" on.
  socket.io.on("open", () => {
    const eng = engine();
    result.transport_at_open = eng.transport ? eng.transport.name : null;
    eng.on("upgrade", () => {
      result.upgraded = true;
      result.upgraded_at = now();
      settleUpgrade();
    });
    eng.on("upgradeError", (err) => {
      result.upgrade_error = describeError(err);
      settleUpgrade();
    });
  });

  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    const eng = engine();
    result.transport = eng && eng.transport ? eng.transport.name : result.transport;
    result.elapsed = now();
    process.stdout.write(JSON.stringify(result) + "\n");
    try {
      socket.close();
    } catch {
      // already closed
    }
    setTimeout(() => process.exit(0), 50);
  };
  const fail = (err) => {
    if (result.error === null) result.error = describeError(err);
    finish();
  };
  const deadline =
    timeoutMs + 1000 * (parseFloat(opts.upgradeWait) + parseFloat(opts.hold)) + 5000 * (opts.ack.length + 1);
  setTimeout(() => fail({ message: "client.js: no outcome before its own deadline" }), deadline).unref();

  socket.on("instance", (id) => {
    if (result.instance === null) result.instance = id;
  });
  socket.on("connect_error", fail);
  socket.on("connect_timeout", () => fail({ message: "timeout" })); // 2.x
  socket.on("error", (err) => {
    if (!result.connected) fail(err); // 2.x: a middleware refusal arrives as "error"
  });
  socket.on("disconnect", (reason, description) => {
    if (result.disconnect === null) {
      result.disconnect = { reason: String(reason), description: plain(description), at: now() };
    }
  });

  const waitUpgrade = () =>
    new Promise((resolve) => {
      const eng = engine();
      const wanted = options.transports.includes("websocket") && options.transports.includes("polling");
      if (!wanted || result.upgraded || result.upgrade_error || (eng.transport && eng.transport.name === "websocket")) {
        return resolve();
      }
      const timer = setTimeout(resolve, parseFloat(opts.upgradeWait) * 1000);
      upgradeSettled.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });

  const ack = (name) =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ error: "no ack within 5 s" }), 5000);
      socket.emit(name, (value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });

  const waitInstance = () =>
    new Promise((resolve) => {
      if (result.instance !== null) return resolve();
      const timer = setTimeout(resolve, 2000);
      socket.once("instance", () => {
        clearTimeout(timer);
        resolve();
      });
    });

  socket.on("connect", async () => {
    result.connected = true;
    result.connected_at = now();
    result.id = socket.id;
    const eng = engine();
    result.transport_at_connect = eng && eng.transport ? eng.transport.name : null;
    await waitUpgrade();
    await waitInstance();
    for (const name of opts.ack) result.acks[name] = await ack(name);
    const hold = parseFloat(opts.hold) * 1000;
    if (hold > 0 && result.disconnect === null) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, hold);
        socket.once("disconnect", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    finish();
  });
}

main();

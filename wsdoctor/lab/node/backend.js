#!/usr/bin/env node
// One lab backend in Node, run as its own process, like the runbook's three pm2 processes:
//
//   node backend.js --server socketio4|socketio2|ws --lab-dir DIR --port N --instance ID
//                   --secret-file FILE [--path /chat/socket.io] [--ping-interval S] [--ping-timeout S]
//                   [--cors-origin ORIGIN ...] [--log FILE] [--host 127.0.0.1]
//
// socketio4: an Express app with Socket.IO 4 attached at --path. It behaves like the python backend
// (wsdoctor/lab/backend.py): a middleware checks the HS256 JWT of the CONNECT `auth` payload ({token})
// or an `Authorization: Bearer` header and refuses with next(err) where err.data says why, so the
// client sees 44{"message":"authentication failed","data":{...}}; on connect it emits `instance` with
// its id (Node sends it after the CONNECT ack); it answers the `whoami` ack with the id and the
// `headers` ack with the request headers of the session's first request; GET .../whoami-http answers
// JSON; every other path falls through to Express's own 404.
// socketio2: the same with Socket.IO 2.x (Engine.IO 3), where the token travels in the query (?token=)
// or the Authorization header, since Socket.IO 2 has no CONNECT auth payload.
// ws: a plain WebSocket server (the `ws` package on its own port, no Socket.IO): it greets each
// connection with {"type":"hello","instance":ID}, answers the text "whoami" with the id and echoes
// anything else; plain HTTP requests get ws's own 426 Upgrade Required.
//
// Auth decisions go to the shared backend log (--log) in the python backend's line format.
// The secret is read from a file, never from the command line (`ps` shows command lines).
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const http = require("http");

function parseArgs(argv) {
  const out = { corsOrigin: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`);
    const key = arg.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const value = argv[++i];
    if (value === undefined) throw new Error(`${arg} needs a value`);
    if (key === "corsOrigin") out.corsOrigin.push(value);
    else out[key] = value;
  }
  for (const need of ["server", "labDir", "port", "instance", "secretFile"]) {
    if (out[need] === undefined) throw new Error(`--${need.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} is required`);
  }
  out.host = out.host || "127.0.0.1";
  out.path = out.path || "/chat/socket.io";
  out.pingInterval = Math.round(parseFloat(out.pingInterval || "25") * 1000);
  out.pingTimeout = Math.round(parseFloat(out.pingTimeout || "20") * 1000);
  out.port = parseInt(out.port, 10);
  return out;
}

// --- the backend log (same lines as the python backend) --------------------------------------------

function pad(n) {
  return String(n).padStart(2, "0");
}

function localStamp(d = new Date()) {
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

class BackendLog {
  constructor(path, instance) {
    this.instance = instance;
    // O_APPEND: three processes share the file; one short write per line does not interleave.
    this.fd = path ? fs.openSync(path, "a") : null;
  }

  write(level, message) {
    const line = `${localStamp()} ${level} [${this.instance}] ${message}\n`;
    if (this.fd !== null) fs.writeSync(this.fd, line);
    else process.stdout.write(line);
  }
}

// --- HS256 JWT, with node's crypto only (error names and messages as PyJWT words them) ------------

class JwtError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

function b64urlJson(part) {
  try {
    return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch {
    throw new JwtError("DecodeError", "Invalid token segment");
  }
}

function verifyJwt(token, secret, now = Date.now() / 1000) {
  const parts = String(token).split(".");
  if (parts.length !== 3) throw new JwtError("DecodeError", "Not enough segments");
  const header = b64urlJson(parts[0]);
  const claims = b64urlJson(parts[1]);
  if (!header || header.alg !== "HS256") throw new JwtError("InvalidAlgorithmError", "The specified alg value is not allowed");
  const expected = crypto.createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    throw new JwtError("InvalidSignatureError", "Signature verification failed");
  }
  if (claims === null || typeof claims !== "object") throw new JwtError("DecodeError", "Invalid payload");
  if (claims.exp !== undefined && !(Number(claims.exp) > now)) {
    throw new JwtError("ExpiredSignatureError", "Signature has expired");
  }
  if (claims.nbf !== undefined && Number(claims.nbf) > now) {
    throw new JwtError("ImmatureSignatureError", "The token is not yet valid (nbf)");
  }
  return claims;
}

// --- shared helpers ----------------------------------------------------------------------------

function maskedHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers || {})) {
    const lower = name.toLowerCase();
    out[lower] = lower === "authorization" || lower === "cookie" ? "***" : String(value);
  }
  return out;
}

function peerOf(headers, address) {
  return (headers && headers["x-forwarded-for"]) || address || "?";
}

function bearer(headers) {
  const value = String((headers && headers.authorization) || "");
  return value.toLowerCase().startsWith("bearer ") ? value.slice(7).trim() : null;
}

/**
 * Check the token; returns the claims or throws an Error fit for next(err). With WITH_DATA (Socket.IO
 * 3+), err.data says why: the client sees 44{"message":"authentication failed","data":{"reason":…}}.
 * Socket.IO 2 sends err.data INSTEAD of the message when it is set, so 2.x apps refuse without it.
 */
function authenticate(token, source, secret, log, sid, peer, withData = true) {
  const refuse = (reason, detail) => {
    log.write("WARN", `authentication failed for sid=${sid} from ${peer}: ${detail}`);
    const err = new Error("authentication failed");
    if (withData) err.data = { reason };
    return err;
  };
  if (!token) throw refuse("no token", "no token in the CONNECT auth");
  let claims;
  try {
    claims = verifyJwt(token, secret);
  } catch (e) {
    const reason = e.name === "ExpiredSignatureError" ? "token expired" : "invalid token";
    throw refuse(reason, `jwt ${e.name}: ${e.message}`);
  }
  log.write("INFO", `connected sid=${sid} from ${peer} sub=${claims.sub} token via ${source}`);
  return claims;
}

function expressApp(instance) {
  const express = require("express");
  const app = express();
  app.disable("x-powered-by");
  app.all(/\/whoami-http\/?$/, (req, res) => {
    const q = req.originalUrl.indexOf("?");
    const body = {
      instance,
      path: req.path,
      query: q >= 0 ? req.originalUrl.slice(q + 1) : "",
      headers: maskedHeaders(req.headers),
    };
    res.set("x-lab-instance", instance);
    res.type("application/json").send(JSON.stringify(body, null, 1));
  });
  return app; // anything else: Express's own 404 "Cannot GET /path"
}

// --- the three servers -------------------------------------------------------------------------

function socketio4(opts, secret, log) {
  const { Server } = require("socket.io");
  const server = http.createServer(expressApp(opts.instance));
  const io = new Server(server, {
    path: opts.path,
    pingInterval: opts.pingInterval,
    pingTimeout: opts.pingTimeout,
    serveClient: false,
    cors: opts.corsOrigin.length
      ? { origin: opts.corsOrigin.includes("*") ? "*" : opts.corsOrigin, credentials: true }
      : undefined,
  });
  io.use((socket, next) => {
    const headers = socket.handshake.headers;
    const peer = peerOf(headers, socket.handshake.address);
    const auth = socket.handshake.auth;
    let token = auth && typeof auth.token === "string" && auth.token ? auth.token : null;
    let source = "auth";
    if (!token && bearer(headers)) {
      token = bearer(headers);
      source = "header";
    }
    try {
      authenticate(token, source, secret, log, socket.id, peer);
      next();
    } catch (err) {
      next(err);
    }
  });
  io.on("connection", (socket) => {
    socket.emit("instance", opts.instance); // Node: after the CONNECT ack
    socket.on("whoami", (...args) => {
      const ack = args[args.length - 1];
      if (typeof ack === "function") ack(opts.instance);
    });
    socket.on("headers", (...args) => {
      const ack = args[args.length - 1];
      if (typeof ack === "function") ack(maskedHeaders(socket.handshake.headers));
    });
    socket.on("disconnect", (reason) => log.write("INFO", `disconnected sid=${socket.id} (${reason})`));
  });
  return server;
}

function socketio2(opts, secret, log) {
  const server = http.createServer(expressApp(opts.instance));
  const io = require("socket.io-v2")(server, {
    path: opts.path,
    pingInterval: opts.pingInterval,
    pingTimeout: opts.pingTimeout,
    serveClient: false,
  });
  io.use((socket, next) => {
    const headers = socket.handshake.headers;
    const peer = peerOf(headers, socket.handshake.address);
    const query = socket.handshake.query || {};
    let token = typeof query.token === "string" && query.token ? query.token : null;
    let source = "query";
    if (!token && bearer(headers)) {
      token = bearer(headers);
      source = "header";
    }
    try {
      authenticate(token, source, secret, log, socket.id, peer, false);
      next();
    } catch (err) {
      next(err);
    }
  });
  io.on("connection", (socket) => {
    socket.emit("instance", opts.instance);
    socket.on("whoami", (...args) => {
      const ack = args[args.length - 1];
      if (typeof ack === "function") ack(opts.instance);
    });
    socket.on("headers", (...args) => {
      const ack = args[args.length - 1];
      if (typeof ack === "function") ack(maskedHeaders(socket.handshake.headers));
    });
    socket.on("disconnect", (reason) => log.write("INFO", `disconnected sid=${socket.id} (${reason})`));
  });
  return server;
}

function plainWs(opts, secret, log) {
  const { WebSocketServer } = require("ws");
  // With {port}, ws runs its own HTTP server, which answers every plain request 426 Upgrade Required.
  const wss = new WebSocketServer({ host: opts.host, port: opts.port });
  let next = 0;
  wss.on("connection", (ws, req) => {
    const id = `ws-${++next}`;
    const peer = peerOf(req.headers, req.socket.remoteAddress);
    log.write("INFO", `connected ${id} from ${peer} path=${req.url}`);
    ws.send(JSON.stringify({ type: "hello", instance: opts.instance }));
    ws.on("message", (data, isBinary) => {
      if (!isBinary && data.toString() === "whoami") ws.send(opts.instance);
      else ws.send(data, { binary: isBinary });
    });
    ws.on("close", (code) => log.write("INFO", `disconnected ${id} (close ${code})`));
  });
  return wss;
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`backend.js: ${e.message}\n`);
    return 2;
  }
  let secret;
  try {
    secret = fs.readFileSync(opts.secretFile, "utf8").trim();
  } catch (e) {
    process.stdout.write(`cannot read the JWT secret from ${opts.secretFile}: ${e.message}; re-run \`wsdoctor lab up\`.\n`);
    return 2;
  }
  const log = new BackendLog(opts.log, opts.instance);
  const servers = { socketio4, socketio2, ws: plainWs };
  const make = servers[opts.server];
  if (!make) {
    process.stderr.write(`backend.js: unknown --server ${opts.server}; use socketio4, socketio2 or ws\n`);
    return 2;
  }
  const server = make(opts, secret, log);
  const what = opts.server === "ws" ? "plain WebSocket (ws)" : `Socket.IO path ${opts.path}`;
  const announce = () =>
    log.write("INFO", `listening on ${opts.host}:${opts.port}, ${what}, pid ${process.pid}, node ${process.version}`);
  server.on("error", (e) => {
    process.stdout.write(`backend.js: ${e.code === "EADDRINUSE" ? "Address already in use" : e.message}\n`);
    process.exit(1);
  });
  if (opts.server === "ws") server.on("listening", announce);
  else server.listen(opts.port, opts.host, announce);
  const stop = () => process.exit(0);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  return null;
}

const code = main();
if (code !== null) process.exit(code);

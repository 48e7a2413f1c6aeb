// zinx-cluster demo chat: zinx frames over a WebSocket, no build step.
//
// A zinx frame is msg_id (u32 big-endian), len (u32 big-endian), data.
// Every frame we send is one binary message. What the gate sends is read
// as a byte stream: a message may hold several frames, a frame may span
// messages. The demo's messages (demo/src/lib.rs):
//   1 login {"name":..}            -> {"ok":true,"name":..} or {"ok":false,"error":..}
//   3 send {"to":..,"text":..}     -> {"ok":..}; the addressee gets {"from":..,"text":..} on 3
//   4 broadcast {"text":..}        -> everybody gets {"from":..,"text":..} on 4
//   0 the framework's error answer {"msg_id":..,"code":..,"error":..}
//   99999 the zinx heartbeat (keeps an idle session open)
"use strict";

const LOGIN = 1, SEND = 3, BROADCAST = 4, ERROR = 0, HEARTBEAT = 99999;
const HEARTBEAT_MS = 15000;

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function wsUrl() {
  const param = new URLSearchParams(location.search).get("ws");
  if (param) return param;
  const meta = document.querySelector('meta[name="zinx-ws"]');
  let where = meta ? meta.content : "";
  if (!where || where.startsWith("{{")) where = ":9000/";
  if (/^wss?:\/\//.test(where)) return where;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.hostname || "127.0.0.1"}${where}`;
}

function frame(msgId, body) {
  const data = typeof body === "string" ? encoder.encode(body) : encoder.encode(JSON.stringify(body));
  const buf = new Uint8Array(8 + data.length);
  const view = new DataView(buf.buffer);
  view.setUint32(0, msgId);
  view.setUint32(4, data.length);
  buf.set(data, 8);
  return buf;
}

// Stream decoder: bytes in, whole frames out.
class FrameReader {
  constructor() { this.buf = new Uint8Array(0); }
  push(bytes) {
    const joined = new Uint8Array(this.buf.length + bytes.length);
    joined.set(this.buf);
    joined.set(bytes, this.buf.length);
    this.buf = joined;
    const frames = [];
    while (this.buf.length >= 8) {
      const view = new DataView(this.buf.buffer, this.buf.byteOffset);
      const msgId = view.getUint32(0), len = view.getUint32(4);
      if (this.buf.length < 8 + len) break;
      frames.push({ msgId, data: this.buf.slice(8, 8 + len) });
      this.buf = this.buf.slice(8 + len);
    }
    return frames;
  }
}

function log(kind, from, text) {
  const li = document.createElement("li");
  li.className = kind;
  if (from !== null) {
    li.dataset.from = from;
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = from;
    li.append(who, ": ");
  }
  li.append(text);
  li.dataset.text = text;
  $("log").append(li);
  li.scrollIntoView({ block: "end" });
}

function parse(data) {
  try { return JSON.parse(decoder.decode(data)); } catch (e) { return null; }
}

let socket = null;
let me = null;
let heartbeat = null;
const reader = new FrameReader();

function setConnected(on) {
  for (const id of ["login", "send", "broadcast"]) $(id).disabled = !on;
}

function onFrame({ msgId, data }) {
  const msg = parse(data);
  if (msg === null) return;
  if (msgId === LOGIN) {
    if (msg.ok) {
      me = msg.name;
      $("status").textContent = `logged in as ${me}`;
      log("system", null, `logged in as ${me}`);
    } else {
      log("error", null, msg.error || "login failed");
    }
  } else if ((msgId === SEND || msgId === BROADCAST) && "from" in msg) {
    log(msgId === SEND ? "private" : "public", msg.from, msg.text);
  } else if (msgId === SEND || msgId === BROADCAST) {
    if (!msg.ok) log("error", null, msg.error || "not delivered");
  } else if (msgId === ERROR) {
    log("error", null, `${msg.code}: ${msg.error}`);
  }
}

function connect() {
  const url = wsUrl();
  socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    $("status").textContent = me ? `reconnected (log in again)` : `connected to ${url}`;
    me = null;
    setConnected(true);
    heartbeat = setInterval(() => socket.send(frame(HEARTBEAT, "ping")), HEARTBEAT_MS);
  };
  socket.onmessage = (ev) => {
    for (const f of reader.push(new Uint8Array(ev.data))) onFrame(f);
  };
  socket.onclose = (ev) => {
    setConnected(false);
    clearInterval(heartbeat);
    $("status").textContent = `disconnected (${ev.code}${ev.reason ? ": " + ev.reason : ""}); retrying…`;
    setTimeout(connect, 2000);
  };
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = $("name").value.trim();
  if (name) socket.send(frame(LOGIN, { name }));
});

$("send-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const to = $("to").value.trim(), text = $("text").value;
  if (!to || !text) return;
  socket.send(frame(SEND, { to, text }));
  log("sent", me || "me", `→ ${to}: ${text}`);
  $("text").value = "";
});

$("broadcast-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("shout").value;
  if (!text) return;
  socket.send(frame(BROADCAST, { text }));
  $("shout").value = "";
});

connect();

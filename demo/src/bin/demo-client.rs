//! demo-client: a line-oriented chat client for the demo cluster.
//!
//! ```text
//! cargo run -p demo --bin demo-client -- --name alice [--addr 127.0.0.1:10000]
//! cargo run -p demo --bin demo-client -- --name bob --ws --addr 127.0.0.1:9000
//! cargo run -p demo --bin demo-client -- --name carol --tls --ca conf/gate.pem
//! ```
//!
//! `--ws` speaks zinx frames over WebSocket to a gate's `WsPort`
//! (`ws://ADDR/WS-PATH`), `--tls` wraps the connection in TLS (TLS on the
//! gate's `Port`, or WSS with `--ws`) trusting the certificates of `--ca`.
//!
//! It connects to a gate, logs in, then sends what you type and prints what
//! arrives. Commands:
//!
//! ```text
//! /to bob hi       a line to bob                      (msg 3, an im node)
//! /all hello       a line to everybody; plain text too (msg 4, an im node)
//! /echo text       echoed by an im node               (msg 6)
//! /gecho text      echoed by the gate itself          (msg 5)
//! /join room       join a room                        (msg 7, the gate)
//! /leave room      leave it                           (msg 8, the gate)
//! /say room text   a line to a room's members         (msg 9, an im node)
//! /remind 5 tea    remind me in 5 seconds             (msg 11, an im node)
//! /login name      log in again under another name    (msg 1)
//! /logout          log out, stay connected            (msg 2)
//! /stats           which im node answers              (msg 21; the gate asks im's internal 20)
//! /quit            leave
//! /help            this list
//! ```
//!
//! It works the same with a pipe for stdin: lines are sent as they come, and
//! at the end of input the client waits (at most `--linger-ms`) for the
//! answers still on their way, then exits 0. It exits 1 when it cannot
//! connect or the server closes the connection while input is still open.
//! Like a zinx client with `StartHeartBeat`, it sends a heartbeat (msg 99999)
//! every 10 s so an idle chat is not closed by the gate's idle timeout.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use demo::{
    Answer, BROADCAST, Chat, Delivery, ERROR, ErrorAnswer, GATE_ECHO, HEARTBEAT, IM_ECHO, JOIN,
    Join, LEAVE, LOGIN, LOGOUT, Leave, Login, REMIND, Remind, Reminder, SAY, SEND, STATS, Said,
    Say, Shout, Stats,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use zinx_cluster::Frame;
use zinx_cluster_client::{Client, ClientTls};

/// How often an otherwise idle client proves it is alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

const HELP: &str = "\
commands:
  /to NAME TEXT   a line to NAME
  /all TEXT       a line to everybody (plain text does the same)
  /echo TEXT      echoed by an im node (crosses the cluster)
  /gecho TEXT     echoed by the gate
  /join ROOM      join a room
  /leave ROOM     leave a room
  /say ROOM TEXT  a line to the members of ROOM
  /remind S TEXT  be reminded of TEXT in S seconds
  /login NAME     log in under another name
  /logout         log out, stay connected
  /stats          which im node answers (the gate asks one)
  /quit           leave
  /help           this list";

/// Command line of the chat client.
#[derive(Debug, Parser)]
#[command(version, about = "Chat client for the zinx-cluster demo")]
struct Args {
    /// The name to log in as.
    #[arg(long)]
    name: String,
    /// The gate to connect to.
    #[arg(long, default_value = "127.0.0.1:10000")]
    addr: String,
    /// At the end of input, wait at most this long for pending answers.
    #[arg(long, default_value_t = 2000)]
    linger_ms: u64,
    /// Speak WebSocket to the gate's WsPort (ADDR is then that port).
    #[arg(long)]
    ws: bool,
    /// The gate's WsPath, with --ws.
    #[arg(long, default_value = "/")]
    ws_path: String,
    /// Use TLS (WSS with --ws); needs --ca.
    #[arg(long, requires = "ca")]
    tls: bool,
    /// PEM certificates to trust for --tls (a CA, or the gate's own
    /// self-signed certificate).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// The name the gate's certificate must carry (default: ADDR's host).
    #[arg(long)]
    server_name: Option<String>,
}

/// Connects as the flags say; the error is for a person to read.
async fn connect(args: &Args) -> Result<Client, String> {
    let trust = match (&args.ca, args.tls) {
        (Some(ca), true) => Some(ClientTls::trusting_pem_file(ca).map_err(|e| e.to_string())?),
        _ => None,
    };
    let host = args
        .addr
        .rsplit_once(':')
        .map_or(args.addr.as_str(), |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_name = args.server_name.as_deref().unwrap_or(host);
    let connected = if args.ws {
        let scheme = if args.tls { "wss" } else { "ws" };
        let url = format!("{scheme}://{}{}", args.addr, args.ws_path);
        Client::connect_ws(&url, trust.as_ref()).await
    } else if let Some(trust) = &trust {
        Client::connect_tls(&args.addr, trust, server_name).await
    } else {
        Client::connect(&args.addr).await
    };
    connected.map_err(|e| e.to_string())
}

/// One line of input, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// A frame to send: msg_id and payload.
    Send(u32, Vec<u8>),
    /// Print this text locally.
    Say(String),
    /// Stop reading input.
    Quit,
    /// Nothing to do (an empty line).
    Nothing,
}

fn json(msg_id: u32, body: &impl Serialize) -> Command {
    match serde_json::to_vec(body) {
        Ok(bytes) => Command::Send(msg_id, bytes),
        Err(e) => Command::Say(format!("! cannot encode: {e}")),
    }
}

/// Parses a typed line.
fn parse(line: &str) -> Command {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Command::Nothing;
    }
    if !line.starts_with('/') {
        return json(BROADCAST, &Shout { text: line.into() });
    }
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "/to" => match rest.trim_start().split_once(' ') {
            Some((to, text)) if !to.is_empty() => json(
                SEND,
                &Chat {
                    to: to.into(),
                    text: text.into(),
                },
            ),
            _ => Command::Say("usage: /to NAME TEXT".into()),
        },
        "/all" => json(BROADCAST, &Shout { text: rest.into() }),
        "/echo" => Command::Send(IM_ECHO, rest.as_bytes().to_vec()),
        "/gecho" => Command::Send(GATE_ECHO, rest.as_bytes().to_vec()),
        "/login" if !rest.trim().is_empty() => json(
            LOGIN,
            &Login {
                name: rest.trim().into(),
            },
        ),
        "/login" => Command::Say("usage: /login NAME".into()),
        "/logout" => Command::Send(LOGOUT, b"{}".to_vec()),
        "/join" | "/leave" => match rest.trim() {
            "" => Command::Say(format!("usage: {cmd} ROOM")),
            room if cmd == "/join" => json(JOIN, &Join { room: room.into() }),
            room => json(LEAVE, &Leave { room: room.into() }),
        },
        "/say" => match rest.trim_start().split_once(' ') {
            Some((room, text)) if !room.is_empty() => json(
                SAY,
                &Say {
                    room: room.into(),
                    text: text.into(),
                },
            ),
            _ => Command::Say("usage: /say ROOM TEXT".into()),
        },
        "/remind" => match rest.trim_start().split_once(' ') {
            Some((secs, text)) => match secs.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => json(
                    REMIND,
                    &Remind {
                        after_ms: (s * 1000.0) as u64,
                        text: text.into(),
                    },
                ),
                _ => Command::Say("usage: /remind SECONDS TEXT".into()),
            },
            None => Command::Say("usage: /remind SECONDS TEXT".into()),
        },
        "/stats" => Command::Send(STATS, Vec::new()),
        "/quit" | "/exit" => Command::Quit,
        "/help" => Command::Say(HELP.into()),
        other => Command::Say(format!("! unknown command {other} (try /help)")),
    }
}

/// What the client knows of its conversation.
#[derive(Debug)]
struct Chatter {
    /// The name we are logged in as (or asked to log in as); our own
    /// broadcasts come back with it.
    name: String,
    /// Requests sent whose answer has not arrived: at the end of input the
    /// client waits for these.
    pending: usize,
}

impl Chatter {
    /// Notes a request sent.
    fn sent(&mut self, msg_id: u32, payload: &[u8]) {
        if msg_id == LOGIN {
            if let Ok(login) = serde_json::from_slice::<Login>(payload) {
                self.name = login.name;
            }
        }
        self.pending += 1;
    }

    /// Notes an answer to one of our requests.
    fn answered(&mut self) {
        self.pending = self.pending.saturating_sub(1);
    }

    /// Turns a frame from the gate into the line to print, if any.
    fn show(&mut self, frame: &Frame) -> Option<String> {
        let data = &frame.data[..];
        let text = || String::from_utf8_lossy(data).into_owned();
        match frame.msg_id {
            // Chat lines carry `from`; answers carry `ok`.
            SEND | BROADCAST => {
                if let Ok(d) = serde_json::from_slice::<Delivery>(data) {
                    if frame.msg_id == SEND {
                        return Some(format!("[{}] {}", d.from, d.text));
                    }
                    if d.from == self.name {
                        self.answered();
                    }
                    return Some(format!("[all] {}: {}", d.from, d.text));
                }
                self.answered();
                answer_line(data, |_| None)
            }
            LOGIN => {
                self.answered();
                answer_line(data, |a| {
                    Some(format!(
                        "* logged in as {}",
                        a.name.as_deref().unwrap_or("?")
                    ))
                })
            }
            LOGOUT => {
                self.answered();
                answer_line(data, |_| Some("* logged out".into()))
            }
            JOIN => {
                self.answered();
                answer_line(data, |_| Some("* joined".into()))
            }
            LEAVE => {
                self.answered();
                answer_line(data, |_| Some("* left".into()))
            }
            // A room's line carries `from`; the sender's answer `ok`.
            SAY => match serde_json::from_slice::<Said>(data) {
                Ok(l) => Some(format!("[{}] {}: {}", l.room, l.from, l.text)),
                Err(_) => {
                    self.answered();
                    answer_line(data, |_| None)
                }
            },
            REMIND => match serde_json::from_slice::<Reminder>(data) {
                Ok(r) => Some(format!("* reminder: {}", r.remind)),
                Err(_) => {
                    self.answered();
                    answer_line(data, |_| Some("* reminder set".into()))
                }
            },
            STATS => {
                self.answered();
                Some(match serde_json::from_slice::<Stats>(data) {
                    Ok(stats) => format!(
                        "* stats: answered by {}, {} im messages handled",
                        stats.node, stats.handled
                    ),
                    Err(_) => format!("stats: {}", text()),
                })
            }
            IM_ECHO => {
                self.answered();
                Some(format!("echo: {}", text()))
            }
            GATE_ECHO => {
                self.answered();
                Some(format!("gate echo: {}", text()))
            }
            ERROR => {
                self.answered();
                Some(match serde_json::from_slice::<ErrorAnswer>(data) {
                    Ok(e) => format!("! msg {} failed ({}): {}", e.msg_id, e.code, e.error),
                    Err(_) => format!("! error: {}", text()),
                })
            }
            other => Some(format!("? msg {other}: {}", text())),
        }
    }
}

/// Prints an [`Answer`]: `on_ok` for success, `! why` for failure.
fn answer_line(data: &[u8], on_ok: impl FnOnce(&Answer) -> Option<String>) -> Option<String> {
    match serde_json::from_slice::<Answer>(data) {
        Ok(a) if a.ok => on_ok(&a),
        Ok(a) => Some(format!("! {}", a.error.as_deref().unwrap_or("failed"))),
        Err(_) => Some(format!("? {}", String::from_utf8_lossy(data))),
    }
}

/// Reads stdin on a thread of its own, one line per message; the channel
/// closes at the end of input. (Tokio's stdin reads on a blocking thread
/// that cannot be cancelled, which would hold the exit of an interactive
/// client until the next Enter.)
fn read_stdin() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut client = match connect(&args).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo-client: cannot connect to {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    if std::io::stdin().is_terminal() {
        println!("connected to {}; /help lists the commands", args.addr);
    }
    let mut me = Chatter {
        name: args.name.clone(),
        pending: 0,
    };
    let mut lines = read_stdin();
    let mut queue = vec![parse(&format!("/login {}", args.name))];

    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT_EVERY, HEARTBEAT_EVERY);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Armed at the end of input: how long we still wait for answers.
    let linger = tokio::time::sleep(Duration::MAX);
    tokio::pin!(linger);
    let mut input_open = true;

    loop {
        for cmd in queue.drain(..) {
            match cmd {
                Command::Send(msg_id, payload) => {
                    me.sent(msg_id, &payload);
                    if let Err(e) = client.send(msg_id, payload).await {
                        eprintln!("demo-client: connection lost: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                Command::Say(text) => println!("{text}"),
                Command::Quit => input_open = false,
                Command::Nothing => {}
            }
            if !input_open {
                linger
                    .as_mut()
                    .reset(Instant::now() + Duration::from_millis(args.linger_ms));
                break;
            }
        }
        if !input_open && me.pending == 0 {
            return ExitCode::SUCCESS;
        }
        tokio::select! {
            frame = client.recv() => match frame {
                Ok(frame) => {
                    if let Some(line) = me.show(&frame) {
                        println!("{line}");
                    }
                }
                Err(e) => {
                    println!("! disconnected: {e}");
                    return if input_open { ExitCode::FAILURE } else { ExitCode::SUCCESS };
                }
            },
            line = lines.recv(), if input_open => match line {
                Some(line) => queue.push(parse(&line)),
                None => queue.push(Command::Quit),
            },
            _ = heartbeat.tick() => {
                if let Err(e) = client.send(HEARTBEAT, &b"ping"[..]).await {
                    eprintln!("demo-client: connection lost: {e}");
                    return ExitCode::FAILURE;
                }
            }
            _ = &mut linger, if !input_open => return ExitCode::SUCCESS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse("/to bob hi there"),
            Command::Send(SEND, br#"{"to":"bob","text":"hi there"}"#.to_vec())
        );
        assert_eq!(
            parse("hello all"),
            Command::Send(BROADCAST, br#"{"text":"hello all"}"#.to_vec())
        );
        assert_eq!(parse("/echo a b"), Command::Send(IM_ECHO, b"a b".to_vec()));
        assert_eq!(parse("/gecho"), Command::Send(GATE_ECHO, Vec::new()));
        assert_eq!(parse("/stats"), Command::Send(STATS, Vec::new()));
        assert_eq!(parse("/quit"), Command::Quit);
        assert_eq!(
            parse("/join r1"),
            Command::Send(JOIN, br#"{"room":"r1"}"#.to_vec())
        );
        assert_eq!(
            parse("/say r1 hi there"),
            Command::Send(SAY, br#"{"room":"r1","text":"hi there"}"#.to_vec())
        );
        assert_eq!(
            parse("/remind 0.5 tea"),
            Command::Send(REMIND, br#"{"after_ms":500,"text":"tea"}"#.to_vec())
        );
        assert!(matches!(parse("/remind x tea"), Command::Say(_)));
        assert!(matches!(parse("/say r1"), Command::Say(_)));
        assert!(matches!(parse("/leave"), Command::Say(_)));
        assert_eq!(parse("   "), Command::Nothing);
        assert!(matches!(parse("/to bob"), Command::Say(_)));
        assert!(matches!(parse("/nope"), Command::Say(s) if s.contains("/nope")));
    }

    #[test]
    fn frames_print_readably() {
        let mut me = Chatter {
            name: "alice".into(),
            pending: 2,
        };
        let show =
            |me: &mut Chatter, msg_id, data: &str| me.show(&Frame::new(msg_id, data.to_string()));
        assert_eq!(
            show(&mut me, SEND, r#"{"from":"bob","text":"hi"}"#).as_deref(),
            Some("[bob] hi")
        );
        assert_eq!(me.pending, 2, "a line from bob answers nothing of ours");
        assert_eq!(show(&mut me, SEND, r#"{"ok":true}"#), None);
        assert_eq!(
            show(&mut me, BROADCAST, r#"{"from":"alice","text":"yo"}"#).as_deref(),
            Some("[all] alice: yo")
        );
        assert_eq!(me.pending, 0);
        me.pending = 1;
        assert_eq!(
            show(&mut me, STATS, r#"{"node":"im-2","handled":7}"#).as_deref(),
            Some("* stats: answered by im-2, 7 im messages handled")
        );
        assert_eq!(me.pending, 0);
        me.pending = 1;
        assert_eq!(
            show(&mut me, SAY, r#"{"room":"r1","from":"bob","text":"hi"}"#).as_deref(),
            Some("[r1] bob: hi")
        );
        assert_eq!(me.pending, 1, "a room's line answers nothing of ours");
        assert_eq!(show(&mut me, SAY, r#"{"ok":true}"#), None);
        assert_eq!(me.pending, 0);
        me.pending = 1;
        assert_eq!(
            show(&mut me, REMIND, r#"{"ok":true}"#).as_deref(),
            Some("* reminder set")
        );
        assert_eq!(
            show(&mut me, REMIND, r#"{"remind":"tea"}"#).as_deref(),
            Some("* reminder: tea")
        );
        assert_eq!(me.pending, 0);
        assert_eq!(
            show(&mut me, SEND, r#"{"ok":false,"error":"bob is not online"}"#).as_deref(),
            Some("! bob is not online")
        );
        assert_eq!(
            show(
                &mut me,
                ERROR,
                r#"{"msg_id":3,"code":"bad_payload","error":"x"}"#
            )
            .as_deref(),
            Some("! msg 3 failed (bad_payload): x")
        );
    }
}

//! The routes a LocalSend device sends to, and the one session slot behind them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use tokio_util::sync::CancellationToken;

use super::{Device, LocalSend, addr_text, device_id};
use crate::limits::{LOCALSEND_PIN_ADDRESSES, LOCALSEND_PIN_TRIES, MAX_LOCALSEND_FILES, MAX_LOCALSEND_JSON, MAX_LOCALSEND_TEXT};
use crate::net::localsend::cert::same_fingerprint;
use crate::net::localsend::dto::{DeviceInfo, PrepareAnswer, PrepareUpload, query_param};
use crate::net::localsend::server::{Client, Reply, empty, error, json, read_body};
use crate::node::transfer::localsend::{Receive, Refused, Wanted, offer};
use crate::node::{Shared, lock};
use crate::reason::Reason;
use crate::store::unix_now_ms;

/// Who holds the receiving side: one sender at a time, from the moment it asks (as 1.18).
pub(super) enum Slot {
    Free,
    /// An offer waits for an answer; `withdraw` takes it back (the sender cancelled).
    Pending {
        ip: IpAddr,
        withdraw: CancellationToken,
        serial: u64,
    },
    Active(Arc<Session>),
}

pub(super) struct Session {
    id: String,
    ip: IpAddr,
    /// fileId → (token, index in the offer, used).
    tokens: std::sync::Mutex<HashMap<String, (String, usize, bool)>>,
    receive: Arc<Receive>,
    cancelled: AtomicBool,
    /// Where the sender's own API is, and its fingerprint: told when we cancel.
    sender_api: Option<(std::net::SocketAddr, String)>,
}

/// Wrong PINs per address: (count, when last wrong), the oldest forgotten past the bound.
#[derive(Default)]
pub(super) struct PinTries(HashMap<IpAddr, (u32, u64)>);

impl PinTries {
    /// One more wrong PIN from `ip`; how many now.
    fn wrong(&mut self, ip: IpAddr) -> u32 {
        if !self.0.contains_key(&ip)
            && self.0.len() >= LOCALSEND_PIN_ADDRESSES
            && let Some(oldest) = self.0.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| *k)
        {
            self.0.remove(&oldest);
        }
        let e = self.0.entry(ip).or_insert((0, 0));
        e.0 = e.0.saturating_add(1);
        e.1 = unix_now_ms();
        e.0
    }
}

/// A UUIDv4 in its usual text form, as LocalSend's session ids and tokens are.
fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::net::localsend::cert::hex_upper(&b).to_ascii_lowercase();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

pub(super) async fn route(shared: Arc<Shared>, req: Request<Incoming>, client: Arc<Client>) -> Reply {
    let Some(ls) = shared.localsend.as_ref() else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let Some(route) = path.strip_prefix(crate::net::localsend::API) else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    match (req.method().clone(), route) {
        (Method::GET, "/v2/info" | "/v1/info") => {
            if query_param(query.as_deref(), "fingerprint").is_some_and(|f| same_fingerprint(&f, &ls.cert.fingerprint)) {
                return error(StatusCode::PRECONDITION_FAILED, "Self-discovered");
            }
            json(StatusCode::OK, &ls.info(&shared.nick()))
        }
        (Method::POST, "/v2/register") => register(&shared, ls, req, &client).await,
        (Method::POST, "/v2/prepare-upload") => prepare(&shared, ls, req, &client, query.as_deref()).await,
        (Method::POST, "/v2/upload") => upload(ls, req, &client, query.as_deref()).await,
        (Method::POST, "/v2/cancel") => cancel(ls, &client, query.as_deref()).await,
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// A JSON body within its bound, or the answer that refuses it.
async fn body_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Reply> {
    let bytes = match read_body(req.into_body(), MAX_LOCALSEND_JSON).await {
        Ok(b) => b,
        Err(true) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {MAX_LOCALSEND_JSON} bytes"),
            ));
        }
        Err(false) => return Err(error(StatusCode::BAD_REQUEST, "body broke off")),
    };
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

/// The device a request comes from: its certificate's fingerprint when it presented one
/// (verified), else what its JSON claims.
fn device_of(info: &DeviceInfo, client: &Client) -> Device {
    let (fingerprint, verified) = match &client.fingerprint {
        Some(f) => (f.clone(), true),
        None => (info.fingerprint.clone(), false),
    };
    Device {
        alias: info.alias.clone(),
        model: info.device_model.clone(),
        kind: info.kind().to_string(),
        fingerprint,
        verified,
        addr: addr_text(client.addr.ip(), info.port),
        seen_ms: unix_now_ms(),
    }
}

async fn register(shared: &Arc<Shared>, ls: &LocalSend, req: Request<Incoming>, client: &Client) -> Reply {
    let info: DeviceInfo = match body_json(req).await {
        Ok(i) => i,
        Err(reply) => return reply,
    };
    // A body claiming another fingerprint than the certificate's is not recorded (1.18 does the
    // same), yet answered: the answer tells nothing the multicast announcement did not.
    let claimed_own = client.fingerprint.as_ref().is_none_or(|f| same_fingerprint(f, &info.fingerprint));
    if claimed_own && !same_fingerprint(&info.fingerprint, &ls.cert.fingerprint) {
        super::remember(shared, device_of(&info, client));
    }
    json(StatusCode::OK, &ls.info(&shared.nick()))
}

async fn prepare(shared: &Arc<Shared>, ls: &LocalSend, req: Request<Incoming>, client: &Client, query: Option<&str>) -> Reply {
    let ip = client.addr.ip();
    let body: PrepareUpload = match body_json(req).await {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    if body.files.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no files");
    }
    if body.files.len() > MAX_LOCALSEND_FILES {
        return error(StatusCode::BAD_REQUEST, format!("more than {MAX_LOCALSEND_FILES} files"));
    }
    if body.files.iter().any(|(k, f)| *k != f.id) {
        return error(StatusCode::BAD_REQUEST, "a file's key is not its id");
    }
    if let Some(pin) = &ls.pin {
        match query_param(query, "pin") {
            Some(given) if given == *pin => {
                lock(&ls.pins).0.remove(&ip);
            }
            given => {
                let wrong = if given.is_some() {
                    lock(&ls.pins).wrong(ip)
                } else {
                    lock(&ls.pins).0.get(&ip).map_or(0, |e| e.0)
                };
                if wrong >= LOCALSEND_PIN_TRIES {
                    return error(StatusCode::TOO_MANY_REQUESTS, "too many wrong PINs");
                }
                return error(StatusCode::UNAUTHORIZED, "PIN required");
            }
        }
    }
    let device = device_of(&body.info, client);
    if same_fingerprint(&device.fingerprint, &ls.cert.fingerprint) {
        return error(StatusCode::PRECONDITION_FAILED, "Self-discovered");
    }
    let peer = device_id(&device.fingerprint);
    let sender_api = body
        .info
        .port
        .filter(|_| body.info.https() && device.verified)
        .map(|port| (std::net::SocketAddr::new(ip, port), device.fingerprint.clone()));
    let alias = body.info.alias.clone();
    super::remember(shared, device);
    // A message: one text file with its text in the preview. Shown as a chat line, nothing
    // accepted (204), as LocalSend's apps do.
    if let [(_, f)] = body.files.iter().collect::<Vec<_>>().as_slice()
        && f.is_text()
        && let Some(text) = &f.preview
    {
        if text.len() > MAX_LOCALSEND_TEXT {
            return error(StatusCode::BAD_REQUEST, format!("message over {MAX_LOCALSEND_TEXT} bytes"));
        }
        return match crate::node::chat::receive_foreign(shared, &peer, &alias, ip, text.clone()).await {
            Ok(true) => empty(StatusCode::NO_CONTENT),
            Ok(false) => error(StatusCode::TOO_MANY_REQUESTS, "over this device's chat budget"),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        };
    }
    let mut wanted = Vec::with_capacity(body.files.len());
    let mut ids = Vec::with_capacity(body.files.len());
    for (id, f) in &body.files {
        let sha256 = match f.sha256_bytes() {
            None => None,
            Some(Some(h)) => Some(h),
            Some(None) => return error(StatusCode::BAD_REQUEST, "sha256 is not 64 hex digits"),
        };
        wanted.push(Wanted {
            name: f.file_name.clone(),
            size: f.size,
            sha256,
        });
        ids.push(id.clone());
    }
    let withdraw = CancellationToken::new();
    let serial = shared.next_id();
    {
        let mut slot = lock(&ls.slot);
        if !matches!(*slot, Slot::Free) {
            return error(StatusCode::CONFLICT, "Blocked by another session");
        }
        *slot = Slot::Pending {
            ip,
            withdraw: withdraw.clone(),
            serial,
        };
    }
    // On a task of its own: the person's answer and the session that follows outlive this
    // request if the sender gives up on it.
    let s = shared.clone();
    let task = shared.tracker.spawn("localsend::offer", async move {
        let gone = withdraw.clone();
        let taken = offer(&s, peer, alias, ip, wanted, async move { gone.cancelled().await }).await;
        let Some(ls) = s.localsend.as_ref() else {
            return Err(Refused::Failed("stopped".into()));
        };
        match taken {
            Ok(receive) => {
                let session = Arc::new(Session {
                    id: uuid(),
                    ip,
                    tokens: std::sync::Mutex::new(ids.iter().enumerate().map(|(i, id)| (id.clone(), (uuid(), i, false))).collect()),
                    receive: receive.clone(),
                    cancelled: AtomicBool::new(false),
                    sender_api,
                });
                *lock(&ls.slot) = Slot::Active(session.clone());
                s.tracker.spawn("localsend::session", watch(s.clone(), session.clone()));
                Ok(session)
            }
            Err(why) => {
                let mut slot = lock(&ls.slot);
                // Unless a cancel freed it already, and another sender took it since.
                if matches!(&*slot, Slot::Pending { serial: n, .. } if *n == serial) {
                    *slot = Slot::Free;
                }
                Err(why)
            }
        }
    });
    match task.await {
        Ok(Ok(session)) => {
            let files = lock(&session.tokens)
                .iter()
                .map(|(id, (token, _, _))| (id.clone(), token.clone()))
                .collect();
            json(
                StatusCode::OK,
                &PrepareAnswer {
                    session_id: session.id.clone(),
                    files,
                },
            )
        }
        Ok(Err(Refused::Bad(why))) => error(StatusCode::BAD_REQUEST, why),
        Ok(Err(Refused::Declined(why))) => error(StatusCode::FORBIDDEN, why),
        Ok(Err(Refused::Busy(why))) => error(StatusCode::CONFLICT, why),
        Ok(Err(Refused::Failed(why))) => error(StatusCode::INTERNAL_SERVER_ERROR, why),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// A session ends when every file has its fate, when either side cancels, or when nothing
/// moves for the stall limit; then the slot is free for the next sender.
async fn watch(shared: Arc<Shared>, session: Arc<Session>) {
    let receive = &session.receive;
    let stop = tokio::select! {
        _ = receive.finished() => None,
        _ = receive.cancelled() => Some(if session.cancelled.load(Ordering::SeqCst) {
            Reason::CancelledBySender
        } else {
            Reason::CancelledByReceiver
        }),
        _ = receive.stalled() => Some(Reason::Stalled),
        _ = shared.cancel.cancelled() => Some(Reason::Stopped),
    };
    // Cancelled here: the sender hears it on its own API (as LocalSend's apps do), so it stops
    // instead of uploading into a closed session.
    if stop == Some(Reason::CancelledByReceiver)
        && let Some((to, fingerprint)) = &session.sender_api
    {
        super::tell_cancel(&shared, *to, fingerprint, &session.id).await;
    }
    receive.told();
    receive.end(stop).await;
    if let Some(ls) = shared.localsend.as_ref() {
        let mut slot = lock(&ls.slot);
        if matches!(&*slot, Slot::Active(s) if Arc::ptr_eq(s, &session)) {
            *slot = Slot::Free;
        }
    }
}

fn session_of(ls: &LocalSend) -> Option<Arc<Session>> {
    match &*lock(&ls.slot) {
        Slot::Active(s) => Some(s.clone()),
        _ => None,
    }
}

async fn upload(ls: &LocalSend, req: Request<Incoming>, client: &Client, query: Option<&str>) -> Reply {
    let (Some(session_id), Some(file_id), Some(token)) = (
        query_param(query, "sessionId"),
        query_param(query, "fileId"),
        query_param(query, "token"),
    ) else {
        return error(StatusCode::BAD_REQUEST, "Missing parameters");
    };
    let Some(session) = session_of(ls).filter(|s| s.id == session_id) else {
        return error(StatusCode::FORBIDDEN, "Invalid session");
    };
    let index = {
        let mut tokens = lock(&session.tokens);
        match tokens.get_mut(&file_id) {
            Some((t, i, used)) if *t == token && session.ip == client.addr.ip() && !*used && !session.receive.is_ended() => {
                // Single use: a replay, even of a failed upload, is refused.
                *used = true;
                *i
            }
            _ => return error(StatusCode::FORBIDDEN, "Invalid token or IP address"),
        }
    };
    match session.receive.upload(index, req.into_body()).await {
        Ok(()) => empty(StatusCode::OK),
        Err(e) => error(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.message,
        ),
    }
}

async fn cancel(ls: &LocalSend, client: &Client, query: Option<&str>) -> Reply {
    let ip = client.addr.ip();
    let asked = query_param(query, "sessionId");
    let mut slot = lock(&ls.slot);
    match &*slot {
        // The sender gave up while the person decides: with or without the session id it does
        // not have yet.
        Slot::Pending { ip: from, withdraw, .. } if *from == ip => {
            withdraw.cancel();
            *slot = Slot::Free;
        }
        Slot::Active(s) if s.ip == ip && asked.as_ref().is_none_or(|a| *a == s.id) => {
            s.cancelled.store(true, Ordering::SeqCst);
            s.receive.cancel_now();
        }
        _ => {
            // The session of one of our sends: the device's person cancelled it there.
            if let Some(asked) = &asked
                && let Some((from, cancel)) = lock(&ls.outgoing).get(asked)
                && *from == ip
            {
                cancel.cancel();
            }
        }
    }
    empty(StatusCode::OK)
}

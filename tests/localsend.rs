//! LocalSend's receiving API against a hand-written client on 127.0.0.1: the JSON it answers,
//! files that arrive whole and identical, and every hostile case refused with nothing written
//! outside the download folder.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use lanyard::fuzzing::Tasks;
use lanyard::fuzzing::net::localsend::cert::DeviceCert;
use lanyard::fuzzing::net::localsend::dto::encode;
use lanyard::fuzzing::net::localsend::server::{Connection, connect, full};
use lanyard::fuzzing::net::localsend::tls::client_config;
use lanyard::node::api::LocalSendConfig;
use lanyard::node::api::{NodeConfig, NodeHandle};
use lanyard::node::events::Event;
use serde_json::{Value, json};

use common::{PATIENCE, pattern, start_node};

struct Phone {
    cert: DeviceCert,
    tracker: Tasks,
}

impl Phone {
    fn new() -> Phone {
        Phone {
            cert: DeviceCert::generate().unwrap(),
            tracker: Tasks::default(),
        }
    }

    async fn conn(&self, node: &NodeHandle, from: Option<IpAddr>) -> Connection {
        let ls = node.localsend().expect("localsend on");
        let (config, pinned) = client_config(&self.cert, Some(&ls.fingerprint)).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], ls.port));
        connect(addr, from, config, &pinned, &self.tracker).await.unwrap()
    }

    async fn call(&self, node: &NodeHandle, method: Method, path: &str, body: impl Into<Bytes>) -> (StatusCode, Bytes) {
        self.call_from(node, None, method, path, body).await
    }

    async fn call_from(
        &self,
        node: &NodeHandle,
        from: Option<IpAddr>,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, Bytes) {
        let mut c = self.conn(node, from).await;
        c.request(method, &format!("/api/localsend{path}"), full(body)).await.unwrap()
    }

    fn info(&self, alias: &str) -> Value {
        json!({"alias": alias, "version": "2.2", "deviceModel": "Pixel", "deviceType": "mobile",
               "fingerprint": self.cert.fingerprint, "port": 53317, "protocol": "https", "download": false})
    }

    async fn prepare(&self, node: &NodeHandle, files: Value, query: &str) -> (StatusCode, Value) {
        let body = json!({"info": self.info("Nice Orange"), "files": files});
        let (status, bytes) = self
            .call(
                node,
                Method::POST,
                &format!("/v2/prepare-upload{query}"),
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn sha256_hex(data: &[u8]) -> String {
    lanyard::fuzzing::net::localsend::cert::hex_upper(ring::digest::digest(&ring::digest::SHA256, data).as_ref()).to_lowercase()
}

fn file(id: &str, name: &str, data: &[u8]) -> Value {
    json!({"id": id, "fileName": name, "size": data.len(), "fileType": "application/octet-stream",
           "sha256": sha256_hex(data), "preview": null})
}

struct Receiver {
    node: NodeHandle,
    _dir: tempfile::TempDir,
    downloads: std::path::PathBuf,
}

async fn receiver(accept_all: bool, pin: Option<&str>) -> Receiver {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::local("lab", dir.path().join("data"));
    config.download_dir = dir.path().join("downloads");
    config.accept_all = accept_all;
    config.localsend = Some(LocalSendConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        pin: pin.map(str::to_string),
        multicast: false,
    });
    let downloads = config.download_dir.clone();
    Receiver {
        node: start_node(config).await,
        _dir: dir,
        downloads,
    }
}

/// Every file below `dir` (not the partial folder), relative, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".lanyard-partial") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

async fn upload(phone: &Phone, node: &NodeHandle, session: &str, id: &str, token: &str, data: Vec<u8>) -> (StatusCode, Bytes) {
    phone.upload_from(node, None, session, id, token, data).await
}

impl Phone {
    async fn upload_from(
        &self,
        node: &NodeHandle,
        from: Option<IpAddr>,
        session: &str,
        id: &str,
        token: &str,
        data: Vec<u8>,
    ) -> (StatusCode, Bytes) {
        let q = format!(
            "/v2/upload?sessionId={}&fileId={}&token={}",
            encode(session),
            encode(id),
            encode(token)
        );
        self.call_from(node, from, Method::POST, &q, data).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_register_answer_as_localsend_does() {
    let r = receiver(false, None).await;
    let phone = Phone::new();
    let ls = r.node.localsend().unwrap();
    assert_eq!(ls.fingerprint.len(), 64);
    for path in ["/v2/info", "/v1/info"] {
        let (status, body) = phone.call(&r.node, Method::GET, path, "").await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["alias"], "lab");
        assert!(v["version"].as_str().unwrap().starts_with("2."));
        assert_eq!(v["deviceType"], "desktop");
        assert_eq!(v["fingerprint"], ls.fingerprint);
        assert!(v.get("port").is_none());
    }
    // 1.17 probes with its own fingerprint; ours answers 412.
    let (status, _) = phone
        .call(
            &r.node,
            Method::GET,
            &format!("/v1/info?fingerprint={}", ls.fingerprint.to_lowercase()),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    let (status, body) = phone
        .call(
            &r.node,
            Method::POST,
            "/v2/register",
            serde_json::to_vec(&phone.info("Nice\u{1b}[31mOrange")).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["fingerprint"], ls.fingerprint);
    let devices = r.node.localsend().unwrap().devices;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].fingerprint, phone.cert.fingerprint);
    assert!(devices[0].verified);
    assert_eq!((devices[0].kind.as_str(), devices[0].model.as_deref()), ("mobile", Some("Pixel")));
    assert_eq!(r.node.snapshot().await.unwrap().localsend, devices);
    // Another device claiming that fingerprint in JSON is not recorded over it.
    let liar = Phone::new();
    let mut claim = liar.info("Liar");
    claim["fingerprint"] = json!(phone.cert.fingerprint);
    let (status, _) = liar
        .call(&r.node, Method::POST, "/v2/register", serde_json::to_vec(&claim).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    let devices = r.node.localsend().unwrap().devices;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].alias, "Nice\u{1b}[31mOrange");
    // Unknown routes and v3.
    assert_eq!(
        phone.call(&r.node, Method::POST, "/v3/register", "{}").await.0,
        StatusCode::NOT_FOUND
    );
    r.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_a_folder_arrive_identical_and_tokens_are_single_use_and_bound_to_the_address() {
    let r = receiver(true, None).await;
    let mut events = r.node.subscribe();
    let phone = Phone::new();
    let a = pattern(300_000, 1);
    let b = pattern(1, 2);
    let c: Vec<u8> = Vec::new();
    let files = json!({"a": file("a", "photo ✓.jpg", &a), "b": file("b", "dir/sub/b.bin", &b), "c": file("c", "dir/empty.txt", &c)});
    let (status, answer) = phone.prepare(&r.node, files, "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let session = answer["sessionId"].as_str().unwrap().to_string();
    assert_eq!(session.len(), 36);
    let token = |id: &str| answer["files"][id].as_str().unwrap().to_string();
    // While this session runs, another sender is told busy.
    let other = Phone::new();
    let (status, _) = other.prepare(&r.node, json!({"x": file("x", "x", b"x")}), "").await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The right token from another address is refused, and stays good for the sender. (Refused
    // uploads carry a byte: a refusal does not read the body, and a big one would meet a closed
    // connection before its answer.)
    let (status, _) = phone
        .upload_from(&r.node, Some(IpAddr::from([127, 0, 0, 2])), &session, "a", &token("a"), vec![1])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A wrong token, a wrong session.
    assert_eq!(
        upload(&phone, &r.node, &session, "a", "nope", vec![1]).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        upload(&phone, &r.node, "nope", "a", &token("a"), vec![1]).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        phone.call(&r.node, Method::POST, "/v2/upload?sessionId=x", "").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        upload(&phone, &r.node, &session, "a", &token("a"), a.clone()).await.0,
        StatusCode::OK
    );
    // Replayed: refused, and what arrived is not overwritten.
    assert_eq!(
        upload(&phone, &r.node, &session, "a", &token("a"), b.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        upload(&phone, &r.node, &session, "b", &token("b"), b.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        upload(&phone, &r.node, &session, "c", &token("c"), c.clone()).await.0,
        StatusCode::OK
    );
    let done = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Event::Done { files, failed, .. }) = events.recv().await {
                return (files, failed);
            }
        }
    })
    .await
    .expect("done");
    assert_eq!(done, (3, 0));
    assert_eq!(listing(&r.downloads), ["dir/empty.txt", "dir/sub/b.bin", "photo ✓.jpg"]);
    assert_eq!(std::fs::read(r.downloads.join("photo ✓.jpg")).unwrap(), a);
    assert_eq!(std::fs::read(r.downloads.join("dir/sub/b.bin")).unwrap(), b);
    // The slot is free again; the same names again land beside, never over.
    let again = async {
        loop {
            let (status, answer) = phone.prepare(&r.node, json!({"a": file("a", "photo ✓.jpg", &b)}), "").await;
            if status != StatusCode::CONFLICT {
                return (status, answer);
            }
            tokio::task::yield_now().await;
        }
    };
    let (status, answer) = tokio::time::timeout(PATIENCE, again).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let s2 = answer["sessionId"].as_str().unwrap();
    let t2 = answer["files"]["a"].as_str().unwrap();
    assert_eq!(upload(&phone, &r.node, s2, "a", t2, b.clone()).await.0, StatusCode::OK);
    assert_eq!(std::fs::read(r.downloads.join("photo ✓.jpg")).unwrap(), a);
    assert_eq!(listing(&r.downloads).len(), 4);
    r.node.shutdown().await;
}

/// Wait until the slot frees, then offer `files`; the answer.
async fn offer_when_free(phone: &Phone, node: &NodeHandle, files: Value) -> (StatusCode, Value) {
    let go = async {
        loop {
            let (status, answer) = phone.prepare(node, files.clone(), "").await;
            if status != StatusCode::CONFLICT {
                return (status, answer);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, go).await.expect("slot freed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_sizes_hashes_and_bodies_are_refused_and_nothing_lands_outside() {
    let r = receiver(true, None).await;
    let phone = Phone::new();
    let long = "x".repeat(300);
    for name in [
        "../x",
        "/etc/x",
        "a/../../b",
        "C:\\x",
        "con",
        "nul.txt",
        "a\0b",
        long.as_str(),
        "a//b",
        "./x",
        "\u{202e}txt.exe",
        ".lanyard-partial/x",
    ] {
        let (status, answer) = offer_when_free(&phone, &r.node, json!({"a": file("a", name, b"evil")})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {answer}");
    }
    // A key that is not its file's id, no files, too many files, a malformed hash.
    assert_eq!(
        offer_when_free(&phone, &r.node, json!({"k": file("a", "a", b"x")})).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(offer_when_free(&phone, &r.node, json!({})).await.0, StatusCode::BAD_REQUEST);
    // More files than taken, in a body within the bound: 400.
    let many: serde_json::Map<String, Value> = (0..10_001)
        .map(|i| (i.to_string(), json!({"id": i.to_string(), "fileName": "f", "size": 0})))
        .collect();
    let body = serde_json::to_vec(&json!({"info": phone.info("x"), "files": many})).unwrap();
    assert!(body.len() < 1 << 20, "{}", body.len());
    assert_eq!(
        phone.call(&r.node, Method::POST, "/v2/prepare-upload", body).await.0,
        StatusCode::BAD_REQUEST
    );
    let mut bad = file("a", "a", b"x");
    bad["sha256"] = json!("zz");
    assert_eq!(offer_when_free(&phone, &r.node, json!({"a": bad})).await.0, StatusCode::BAD_REQUEST);
    // A 10 MB body: refused by its size, not parsed.
    let big = format!(
        "{{\"info\":{},\"files\":{{\"a\":{{\"id\":\"a\",\"fileName\":\"{}\"}}}}}}",
        phone.info("x"),
        "y".repeat(10 << 20)
    );
    // The node answers 413 after its first MiB and closes: the client sees the answer, or its
    // write cut short when the close overtakes it. Either way the node goes on serving.
    let mut c = phone.conn(&r.node, None).await;
    match c.request(Method::POST, "/api/localsend/v2/prepare-upload", full(big)).await {
        Ok((status, _)) => assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(format!("{e:#}").contains("writing a body"), "{e:#}"),
    }
    assert_eq!(phone.call(&r.node, Method::GET, "/v2/info", "").await.0, StatusCode::OK);
    // Sizes: one byte more, one byte less, a wrong hash; each file fails, none is placed.
    let data = pattern(1000, 3);
    let mut wrong_hash = file("h", "h.bin", &data);
    wrong_hash["sha256"] = json!(sha256_hex(b"other"));
    let files = json!({"p": file("p", "plus.bin", &data), "m": file("m", "minus.bin", &data), "h": wrong_hash});
    let (status, answer) = offer_when_free(&phone, &r.node, files).await;
    assert_eq!(status, StatusCode::OK);
    let s = answer["sessionId"].as_str().unwrap();
    let t = |id: &str| answer["files"][id].as_str().unwrap().to_string();
    let mut plus = data.clone();
    plus.push(0);
    assert_eq!(upload(&phone, &r.node, s, "p", &t("p"), plus).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        upload(&phone, &r.node, s, "m", &t("m"), data[..999].to_vec()).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        upload(&phone, &r.node, s, "h", &t("h"), data.clone()).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // After its failure a token is spent.
    assert_eq!(
        upload(&phone, &r.node, s, "m", &t("m"), data.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert!(listing(&r.downloads).is_empty(), "{:?}", listing(&r.downloads));
    let parent = r.downloads.parent().unwrap();
    for f in ["x", "b", "etc"] {
        assert!(!parent.join(f).exists());
    }
    r.node.shutdown().await;
}

async fn next_offer(events: &mut lanyard::node::events::Subscription) -> lanyard::node::api::OfferView {
    let wait = async {
        loop {
            if let Ok(Event::Offer(o)) = events.recv().await {
                return o;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("an offer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_text_decline_and_cancel() {
    let r = receiver(false, Some("4711")).await;
    let mut events = r.node.subscribe();
    let phone = Phone::new();
    let files = json!({"a": file("a", "a.bin", b"abc")});
    assert_eq!(phone.prepare(&r.node, files.clone(), "").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(phone.prepare(&r.node, files.clone(), "?pin=1").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(phone.prepare(&r.node, files.clone(), "?pin=2").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        phone.prepare(&r.node, files.clone(), "?pin=3").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(phone.prepare(&r.node, files.clone(), "").await.0, StatusCode::TOO_MANY_REQUESTS);
    // A message: a chat line from the device, nothing accepted.
    let text = json!({"t": {"id": "t", "fileName": "6b1d.txt", "size": 8, "fileType": "text/plain", "preview": "hi \u{1b}[2J there"}});
    assert_eq!(phone.prepare(&r.node, text, "?pin=4711").await.0, StatusCode::NO_CONTENT);
    let line = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Event::ChatReceived { nick, text, .. }) = events.recv().await {
                return (nick, text);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(line, ("Nice Orange".to_string(), "hi \u{1b}[2J there".to_string()));
    // Nobody to answer here: declined.
    assert_eq!(phone.prepare(&r.node, files.clone(), "?pin=4711").await.0, StatusCode::FORBIDDEN);
    // A person declines through the offer dialog's call.
    let _answerer = r.node.answer_offers();
    let node = r.node.clone();
    let p2 = Arc::new(Phone::new());
    let asking = {
        let (p2, node, files) = (p2.clone(), node.clone(), files.clone());
        tokio::spawn(async move { p2.prepare(&node, files, "?pin=4711").await })
    };
    let offer = next_offer(&mut events).await;
    assert_eq!(offer.nick, "Nice Orange");
    assert_eq!(offer.names, ["a.bin"]);
    // While it waits, another sender is busy-ed.
    assert_eq!(phone.prepare(&r.node, files.clone(), "?pin=4711").await.0, StatusCode::CONFLICT);
    assert!(r.node.answer_offer(&offer.transfer, false, false).await);
    assert_eq!(asking.await.unwrap().0, StatusCode::FORBIDDEN);
    // The sender cancels while the person decides: the offer is withdrawn.
    let asking = {
        let (p2, node, files) = (p2.clone(), node.clone(), files.clone());
        tokio::spawn(async move { p2.prepare(&node, files, "?pin=4711").await })
    };
    let offer = next_offer(&mut events).await;
    assert_eq!(p2.call(&r.node, Method::POST, "/v2/cancel", "").await.0, StatusCode::OK);
    assert_eq!(asking.await.unwrap().0, StatusCode::FORBIDDEN);
    assert!(!r.node.offers().iter().any(|o| o.transfer == offer.transfer));
    // Accepted, then cancelled by the sender mid-way: nothing placed, the token dead.
    let asking = {
        let (p2, node, files) = (p2.clone(), node.clone(), files.clone());
        tokio::spawn(async move { p2.prepare(&node, files, "?pin=4711").await })
    };
    let offer = next_offer(&mut events).await;
    assert!(r.node.answer_offer(&offer.transfer, true, false).await);
    let (status, answer) = asking.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let s = answer["sessionId"].as_str().unwrap().to_string();
    assert_eq!(
        p2.call(&r.node, Method::POST, &format!("/v2/cancel?sessionId={s}"), "").await.0,
        StatusCode::OK
    );
    let token = answer["files"]["a"].as_str().unwrap().to_string();
    assert_eq!(
        upload(&p2, &r.node, &s, "a", &token, b"abc".to_vec()).await.0,
        StatusCode::FORBIDDEN
    );
    let cancelled = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Event::Cancelled { transfer, .. }) = events.recv().await {
                return transfer;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(cancelled, offer.transfer);
    assert!(listing(&r.downloads).is_empty());
    r.node.shutdown().await;
}

/// The first progress row of a running `direction` transfer of `total` bytes with bytes moved:
/// its id.
async fn first_progress(events: &mut lanyard::node::events::Subscription, direction: lanyard::node::api::Direction, total: u64) -> String {
    let wait = async {
        loop {
            if let Ok(Event::Progress(p)) = events.recv().await
                && p.direction == direction
                && p.total == total
                && p.bytes > 0
            {
                return p.transfer;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.expect("progress")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanyard_sends_to_a_localsend_device_with_pin_and_cancels_reach_the_other_side() {
    use lanyard::node::api::{Direction, TransferError};
    let a = receiver(false, None).await;
    let b = receiver(true, Some("12")).await;
    let b_port = b.node.localsend().unwrap().port;
    let device = a.node.localsend_register(SocketAddr::from(([127, 0, 0, 1], b_port))).await.unwrap();
    assert_eq!(device.fingerprint, b.node.localsend().unwrap().fingerprint);
    assert!(device.verified);
    // B learned A from the register, by A's certificate.
    let a_fp = a.node.localsend().unwrap().fingerprint;
    assert!(
        b.node
            .localsend()
            .unwrap()
            .devices
            .iter()
            .any(|d| d.fingerprint == a_fp && d.verified)
    );
    assert_eq!(
        a.node.localsend_device("lab").map(|d| d.fingerprint),
        Some(device.fingerprint.clone())
    );

    let src = tempfile::tempdir().unwrap();
    let one = src.path().join("one.bin");
    std::fs::write(&one, pattern(200_000, 5)).unwrap();
    let folder = src.path().join("album");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("x.txt"), b"x").unwrap();
    std::fs::write(folder.join("sub/y.bin"), pattern(70_000, 6)).unwrap();
    // No PIN: refused, nothing sent.
    let (_, task) = a.node.localsend_send(device.clone(), vec![one.clone()], None);
    match task.await.unwrap() {
        Err(TransferError::Rejected(_, why)) => assert!(why.contains("PIN"), "{why}"),
        other => panic!("{other:?}"),
    }
    let (_, task) = a
        .node
        .localsend_send(device.clone(), vec![one.clone(), folder.clone()], Some("12".into()));
    let outcome = task.await.unwrap().unwrap();
    assert_eq!((outcome.files, outcome.failed_count()), (3, 0));
    assert_eq!(listing(&b.downloads), ["album/sub/y.bin", "album/x.txt", "one.bin"]);
    for (sent, got) in [
        (one.clone(), "one.bin"),
        (folder.join("sub/y.bin"), "album/sub/y.bin"),
        (folder.join("x.txt"), "album/x.txt"),
    ] {
        assert_eq!(std::fs::read(sent).unwrap(), std::fs::read(b.downloads.join(got)).unwrap(), "{got}");
    }

    // A big (sparse) file, cancelled by the receiver once bytes move: the sender hears it.
    let big = src.path().join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(1 << 30).unwrap();
    let mut b_events = b.node.subscribe();
    let (_, task) = a.node.localsend_send(device.clone(), vec![big.clone()], Some("12".into()));
    let receiving = first_progress(&mut b_events, Direction::Receive, 1 << 30).await;
    assert!(b.node.cancel_transfer(&receiving));
    match task.await.unwrap() {
        Err(TransferError::Cancelled(code, _)) => assert_eq!(code, lanyard::node::api::Reason::CancelledByReceiver),
        other => panic!("{other:?}"),
    }
    assert!(!b.downloads.join("big.bin").exists());

    // Cancelled by the sender: the receiver's row ends cancelled by the sender, nothing placed.
    let mut a_events = a.node.subscribe();
    // (The first round's end may be told after its sender heard the cancel: it is skipped.)
    let mut b_events = b.node.subscribe();
    let (id, task) = offer_again(&a, &device, &big).await;
    let sending = first_progress(&mut a_events, Direction::Send, 1 << 30).await;
    assert_eq!(sending, id);
    assert!(a.node.cancel_transfer(&id));
    assert!(matches!(
        task.await.unwrap(),
        Err(TransferError::Cancelled(lanyard::node::api::Reason::CancelledBySender, _))
    ));
    let cancelled = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(Event::Cancelled {
                direction: Direction::Receive,
                code,
                transfer,
                ..
            }) = b_events.recv().await
                && transfer != receiving
            {
                return code;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(cancelled, lanyard::node::api::Reason::CancelledBySender);
    assert!(!b.downloads.join("big.bin").exists());
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// Send `file` again once the receiver's slot is free (its last session may still be ending).
async fn offer_again(
    a: &Receiver,
    device: &lanyard::node::api::Device,
    file: &std::path::Path,
) -> (
    String,
    tokio::task::JoinHandle<Result<lanyard::node::api::Outcome, lanyard::node::api::TransferError>>,
) {
    let go = async {
        loop {
            let mut events = a.node.subscribe();
            let (id, mut task) = a.node.localsend_send(device.clone(), vec![file.to_path_buf()], Some("12".into()));
            // Busy only until the last session's end is through: the first try nearly always goes.
            let started = loop {
                tokio::select! {
                    e = events.recv() => if let Ok(Event::Progress(p)) = e
                        && p.transfer == id
                        && p.bytes > 0
                    {
                        break true;
                    },
                    _ = &mut task => break false,
                }
            };
            if started {
                return (id, task);
            }
        }
    };
    tokio::time::timeout(PATIENCE, go).await.expect("a session")
}

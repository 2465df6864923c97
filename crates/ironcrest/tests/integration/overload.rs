//! Load shedding (`gateway.limits.overload`) on the real server: with every place for
//! requests on the systems taken and the queue full, a request is answered 503 with
//! `Retry-After` and a JSON body naming the reason; a queued one gets a place as soon as
//! one comes free, or is shed once its wait runs out; the admitted requests complete, and
//! routes on no system are never shed.

use std::path::PathBuf;
use std::time::Duration;

use ironcrest_config::{Config, OverloadLimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{SYSTEM, TestServer, env, user_token};

const BOUNDARY: &str = "overload-boundary";
const CONTENT: &[u8] = b"first half, then the second half of the upload";

/// A directory of fireuser's, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Self {
        let user = env("IRONCREST_DEV_USER");
        let path = PathBuf::from(format!("/home/{user}/it-overload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        let ids = nix_ids(&user);
        std::os::unix::fs::lchown(&path, Some(ids.0), Some(ids.1)).unwrap();
        Self(path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nix_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let output = std::process::Command::new("id")
            .args([flag, user])
            .output()
            .unwrap();
        String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

/// An upload whose body stops halfway: its handler holds a place until [`Self::finish`]
/// sends the rest.
struct HeldUpload {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl HeldUpload {
    async fn start(server: &TestServer, token: &str, dir: &WorkDir, name: &str) -> Self {
        let mut body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(CONTENT);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let address = server.url.trim_start_matches("http://");
        let head = format!(
            "POST /filesystem/{SYSTEM}/ops/upload?path={} HTTP/1.1\r\nHost: {address}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
             Content-Length: {}\r\n\r\n",
            dir.0.display(),
            body.len()
        );
        let split = body.len() - CONTENT.len() / 2 - BOUNDARY.len() - 8;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..split]).await.unwrap();
        Self {
            stream,
            rest: body[split..].to_vec(),
        }
    }

    /// Sends the rest of the body; the response's status line.
    async fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut response = Vec::new();
        let mut buffer = [0; 4096];
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = self.stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "closed before a response: {response:?}");
            response.extend_from_slice(&buffer[..read]);
        }
        let text = String::from_utf8_lossy(&response);
        text.lines().next().unwrap().to_string()
    }
}

fn listing() -> String {
    format!(
        "/filesystem/{SYSTEM}/ops/ls?path=/home/{}",
        env("IRONCREST_DEV_USER")
    )
}

/// A shed answer's cause, read from its message; panics unless it is a complete shed
/// answer (503, `Retry-After`, the JSON error with `reason: overloaded`).
async fn shed_cause(response: reqwest::Response) -> &'static str {
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "overloaded", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("The server is overloaded: ") && message.ends_with("retry in 2 s."),
        "{message}"
    );
    if message.contains("2 places for requests on the systems are taken and 1 requests") {
        "queue_full"
    } else if message.contains("waited 3 s and none of its 2 places") {
        "queue_timeout"
    } else {
        panic!("an unknown cause: {message}")
    }
}

#[tokio::test]
async fn past_its_places_and_queue_the_server_sheds_with_503_and_serves_the_admitted() {
    let server = TestServer::start_with(|config: &mut Config| {
        config.gateway.limits.overload = OverloadLimit {
            max_in_flight: 2,
            max_queued: 1,
            queue_timeout: 3.0,
            retry_after: 2,
            status: 503,
        };
        // The held uploads must outlast the test's waits.
        for cluster in &mut config.clusters {
            cluster.ssh.timeout.command_execution = 120;
            cluster.ssh.timeout.idle_timeout = 180;
        }
    })
    .await;
    let token = user_token().await;
    let dir = WorkDir::new();
    let first = HeldUpload::start(&server, &token, &dir, "first.bin").await;
    let second = HeldUpload::start(&server, &token, &dir, "second.bin").await;

    // Once both uploads hold their places, a listing waits its queue_timeout and is shed.
    let mut served_before = 0;
    let timed_out = loop {
        let response = server.get(&listing(), Some(&token)).await;
        if response.status() == 200 {
            served_before += 1;
            assert!(served_before < 200, "the uploads never took their places");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        break response;
    };
    assert_eq!(shed_cause(timed_out).await, "queue_timeout");

    // One of a burst waits in the queue's one place; the others are shed without waiting.
    let full = [("family", "filesystem-read"), ("cause", "queue_full")];
    let shed_before = server.metric("ironcrest_overload_shed_total", &full).await;
    let path = listing();
    let burst = futures::future::join_all((0..5).map(|_| server.get(&path, Some(&token)))).await;
    let mut causes = Vec::new();
    for response in burst {
        causes.push(shed_cause(response).await);
    }
    causes.sort();
    assert_eq!(
        causes,
        [
            "queue_full",
            "queue_full",
            "queue_full",
            "queue_full",
            "queue_timeout"
        ]
    );
    let shed_after = server.metric("ironcrest_overload_shed_total", &full).await;
    assert!(
        shed_after - shed_before >= 4.0,
        "{shed_before} → {shed_after}"
    );

    // Routes on no system take no place.
    assert_eq!(
        server.get("/status/systems", Some(&token)).await.status(),
        200
    );
    assert_eq!(server.get("/status/liveness/", None).await.status(), 200);

    // A queued listing gets the place the first upload frees; the uploads complete.
    let queued = tokio::spawn({
        let (http, url, token) = (server.http.clone(), server.url.clone(), token.clone());
        async move {
            http.get(format!("{url}{}", listing()))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(first.finish().await, "HTTP/1.1 204 No Content");
    assert_eq!(queued.await.unwrap(), 200);
    assert_eq!(second.finish().await, "HTTP/1.1 204 No Content");
    for name in ["first.bin", "second.bin"] {
        assert_eq!(std::fs::read(dir.0.join(name)).unwrap(), CONTENT);
    }
    assert_eq!(server.get(&listing(), Some(&token)).await.status(), 200);
}

//! The filesystem ops API against the real sshd, as fireuser. Each test works in its own
//! directory under /home/fireuser, prepared and inspected directly (the tests run as root).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ironcrest_config::{FileSystemConfig, FileSystemDataType};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{SYSTEM, TestServer, user_token};

const HOME: &str = "/home/fireuser";

/// A fresh directory owned by fireuser, removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(name: &str) -> Self {
        let path = PathBuf::from(format!("{HOME}/it-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        chown_fireuser(&path);
        Self(path)
    }

    fn path(&self, name: &[u8]) -> PathBuf {
        self.0.join(OsStr::from_bytes(name))
    }

    fn str(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// A file owned by fireuser.
    fn file(&self, name: &[u8], content: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        chown_fireuser(&path);
        path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn id(flag: &str, user: &str) -> String {
    let output = std::process::Command::new("id")
        .args([flag, user])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn uid(user: &str) -> u32 {
    id("-u", user).parse().unwrap()
}

fn gid(user: &str) -> u32 {
    id("-g", user).parse().unwrap()
}

fn chown_fireuser(path: &Path) {
    std::os::unix::fs::lchown(path, Some(uid("fireuser")), Some(gid("fireuser"))).unwrap();
}

/// Percent-encodes every byte that is not unreserved, so any name survives a query.
fn enc(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (*b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ops(op: &str) -> String {
    format!("/filesystem/{SYSTEM}/ops/{op}")
}

struct Client {
    server: TestServer,
    token: String,
}

impl Client {
    async fn start() -> Self {
        Self::with(TestServer::start().await).await
    }

    async fn with(server: TestServer) -> Self {
        Self {
            server,
            token: user_token().await,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .server
            .http
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    async fn get(&self, op: &str, path: &[u8], query: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("{}?path={}{query}", ops(op), enc(path)),
            None,
        )
        .await
    }

    async fn ok(&self, op: &str, path: &[u8], query: &str) -> Value {
        let (status, body) = self.get(op, path, query).await;
        assert_eq!(
            status,
            200,
            "{op} {}: {body}",
            String::from_utf8_lossy(path)
        );
        body["output"].clone()
    }

    async fn upload(&self, dir: &str, filename: &[u8], content: &[u8]) -> reqwest::Response {
        let boundary = "ironcrest-test-boundary-7f3a";
        let mut body =
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"")
                .into_bytes();
        body.extend_from_slice(filename);
        body.extend_from_slice(b"\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.server
            .http
            .post(format!(
                "{}{}?path={}",
                self.server.url,
                ops("upload"),
                enc(dir.as_bytes())
            ))
            .bearer_auth(&self.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

fn names(listing: &Value) -> Vec<String> {
    let mut names: Vec<String> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn ls_variants_return_firecrest_files() {
    let client = Client::start().await;
    let dir = WorkDir::new("ls");
    dir.file(b"a.txt", b"hello");
    dir.file(b".hidden", b"");
    std::fs::create_dir(dir.path(b"sub")).unwrap();
    chown_fireuser(&dir.path(b"sub"));
    dir.file(b"sub/deep", b"12");
    std::os::unix::fs::symlink("a.txt", dir.path(b"link")).unwrap();
    chown_fireuser(&dir.path(b"link"));

    let listing = client.ok("ls", dir.str().as_bytes(), "").await;
    assert_eq!(names(&listing), ["a.txt", "link", "sub"]);
    let file = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "a.txt")
        .unwrap();
    let keys: Vec<&String> = file.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8);
    assert_eq!(file["type"], "-");
    assert_eq!(file["permissions"], "rw-r--r--");
    assert_eq!(file["user"], "fireuser");
    assert_eq!(file["group"], id("-gn", "fireuser").as_str());
    assert_eq!(file["size"], "5");
    assert_eq!(file["linkTarget"], Value::Null);
    let modified = file["lastModified"].as_str().unwrap();
    assert!(chrono_like(modified), "{modified}");
    let link = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "link")
        .unwrap();
    assert_eq!(
        (link["type"].as_str(), link["linkTarget"].as_str()),
        (Some("l"), Some("a.txt"))
    );

    let hidden = client
        .ok("ls", dir.str().as_bytes(), "&showHidden=true")
        .await;
    assert_eq!(names(&hidden), [".hidden", "a.txt", "link", "sub"]);
    let recursive = client
        .ok("ls", dir.str().as_bytes(), "&recursive=true")
        .await;
    assert_eq!(names(&recursive), ["a.txt", "link", "sub", "sub/deep"]);
    let numeric = client
        .ok("ls", dir.str().as_bytes(), "&numericUid=true")
        .await;
    assert_eq!(numeric[0]["user"], uid("fireuser").to_string());
    let dereferenced = client
        .ok("ls", dir.str().as_bytes(), "&dereference=true")
        .await;
    let link = dereferenced
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "link")
        .unwrap();
    assert_eq!(
        (link["type"].as_str(), link["size"].as_str()),
        (Some("-"), Some("5"))
    );
}

/// `YYYY-MM-DDTHH:MM:SS`.
fn chrono_like(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 19 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':'
}

#[tokio::test]
async fn head_tail_view_checksum_file_and_stat() {
    let client = Client::start().await;
    let dir = WorkDir::new("read");
    let lines: String = (1..=12).map(|i| format!("{i}\n")).collect();
    let path = dir.file(b"lines.txt", lines.as_bytes());
    let p = path.as_os_str().as_bytes();

    let head = client.ok("head", p, "&skipTrailing=false").await;
    assert_eq!(
        head,
        json!({"content": "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "contentType": "lines", "startPosition": 0, "endPosition": 10})
    );
    let head = client.ok("head", p, "&bytes=3").await;
    assert_eq!(
        (
            head["content"].as_str(),
            head["contentType"].as_str(),
            head["endPosition"].as_i64()
        ),
        (Some("1\n2"), Some("bytes"), Some(3))
    );
    let head = client.ok("head", p, "&lines=10&skipTrailing=true").await;
    assert_eq!(
        (head["content"].as_str(), head["endPosition"].as_i64()),
        (Some("1\n2\n"), Some(-10))
    );
    let (status, body) = client.get("head", p, "&lines=1&bytes=1").await;
    assert_eq!(
        (status.as_u16(), body["message"].as_str()),
        (
            400,
            Some("Only one of `bytes` or `lines` can be specified.")
        )
    );

    let tail = client.ok("tail", p, "&lines=2").await;
    assert_eq!(
        tail,
        json!({"content": "11\n12\n", "contentType": "lines", "startPosition": -2, "endPosition": -1})
    );
    let tail = client.ok("tail", p, "&lines=11&skipHeading=true").await;
    assert_eq!(
        (tail["content"].as_str(), tail["startPosition"].as_i64()),
        (Some("11\n12\n"), Some(11))
    );
    let tail = client.ok("tail", p, "&bytes=3").await;
    assert_eq!(tail["content"], "12\n");

    assert_eq!(client.ok("view", p, "").await, json!(lines));
    assert_eq!(
        client.ok("view", p, "&offset=2&size=4").await,
        json!("2\n3\n")
    );
    for (query, message) in [
        (
            "&offset=-1",
            "`offset` value must be an integer value equal or greater than 0",
        ),
        (
            "&size=0",
            "`size` value must be an integer value greater than 0",
        ),
        (
            "&size=5242881",
            "`size` value must be less than 5242880 bytes",
        ),
    ] {
        let (status, body) = client.get("view", p, query).await;
        assert_eq!(
            (status.as_u16(), body["message"].as_str()),
            (400, Some(message)),
            "{query}"
        );
    }

    let checksum = client.ok("checksum", p, "").await;
    let expected = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(checksum["algorithm"], "SHA256");
    assert_eq!(
        checksum["checksum"].as_str().unwrap(),
        &String::from_utf8(expected.stdout).unwrap()[..64]
    );

    assert_eq!(client.ok("file", p, "").await, "ASCII text");

    let stat = client.ok("stat", p, "").await;
    assert_eq!(stat["size"], lines.len());
    assert_eq!(stat["mode"], 0o100644);
    assert_eq!(stat["uid"], uid("fireuser"));
    for key in ["ino", "dev", "nlink", "gid", "atime", "ctime", "mtime"] {
        assert!(stat[key].is_u64(), "{key}");
    }
    std::os::unix::fs::symlink(&path, dir.path(b"link")).unwrap();
    let link = dir.path(b"link");
    let lstat = client.ok("stat", link.as_os_str().as_bytes(), "").await;
    assert_eq!(lstat["mode"].as_u64().unwrap() & 0o170000, 0o120000);
    let stat = client
        .ok("stat", link.as_os_str().as_bytes(), "&dereference=true")
        .await;
    assert_eq!(stat["size"], lines.len());
}

#[tokio::test]
async fn mkdir_symlink_chmod_chown_and_rm() {
    let client = Client::start().await;
    let dir = WorkDir::new("write");
    let made = format!("{}/a/b", dir.str());
    let (status, body) = client
        .call(
            Method::POST,
            &ops("mkdir"),
            Some(json!({"sourcePath": made, "parent": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (
            body["output"]["name"].as_str(),
            body["output"]["type"].as_str()
        ),
        (Some(made.as_str()), Some("d"))
    );
    let (status, body) = client
        .call(Method::POST, &ops("mkdir"), Some(json!({"path": made})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("File exists"));
    let (status, body) = client
        .call(
            Method::POST,
            &ops("mkdir"),
            Some(json!({"path": format!("{}/x/y", dir.str())})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("No such file or directory")
    );

    let target = dir.file(b"t.txt", b"x");
    let link = format!("{}/l", dir.str());
    let (status, body) = client
        .call(
            Method::POST,
            &ops("symlink"),
            Some(json!({"sourcePath": target, "linkPath": link})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["output"]["type"], "l");
    assert_eq!(body["output"]["linkTarget"].as_str(), target.to_str());
    assert_eq!(std::fs::read_link(&link).unwrap(), target);

    let (status, body) = client
        .call(
            Method::PUT,
            &ops("chmod"),
            Some(json!({"path": target, "mode": "750"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"]["permissions"], "rwxr-x---");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o750
    );
    let (status, body) = client
        .call(
            Method::PUT,
            &ops("chmod"),
            Some(json!({"path": target, "mode": "u+q"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("Invalid mode"));
    assert_eq!(body["data"]["fields"][0]["name"], "mode");
    let (status, body) = client
        .call(
            Method::PUT,
            &ops("chmod"),
            Some(json!({"path": target, "mode": "--reference=/etc/shadow"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o750
    );

    let (status, body) = client
        .call(
            Method::PUT,
            &ops("chown"),
            Some(json!({"path": target, "owner": "fireuser", "group": "fireuser"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"]["user"], "fireuser");
    let (status, body) = client
        .call(
            Method::PUT,
            &ops("chown"),
            Some(json!({"path": target, "owner": "nosuchuser"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("invalid user"));
    let (status, body) = client
        .call(
            Method::PUT,
            &ops("chown"),
            Some(json!({"path": target, "owner": "root"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Operation not permitted")
    );
    let (status, _) = client
        .call(
            Method::PUT,
            &ops("chown"),
            Some(json!({"path": target, "owner": null})),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = client
        .call(
            Method::DELETE,
            &format!(
                "{}?path={}",
                ops("rm"),
                enc(format!("{}/a", dir.str()).as_bytes())
            ),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(!dir.path(b"a").exists());
    let (status, body) = client
        .call(
            Method::DELETE,
            &format!(
                "{}?path={}",
                ops("rm"),
                enc(format!("{}/a", dir.str()).as_bytes())
            ),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("No such file or directory")
    );
}

#[tokio::test]
async fn paths_outside_the_file_systems_and_bad_input_are_400s_naming_the_problem() {
    let client = Client::start().await;
    let system = SYSTEM;
    let outside = format!(
        "The provided path (/etc/passwd) does not match any of the defined filesystem paths for the requested system ({system})."
    );
    let cases: Vec<(String, String)> = vec![
        (format!("{}?path=/etc/passwd", ops("head")), outside.clone()),
        (
            format!("{}?path=/home/../etc/passwd", ops("ls")),
            format!(
                "The provided path (/home/../etc/passwd) does not match any of the defined filesystem paths for the requested system ({system})."
            ),
        ),
        (
            format!("{}?path=home/fireuser", ops("ls")),
            "The provided path (home/fireuser) is not an absolute path.".into(),
        ),
        (
            format!("{}?path=/home/fire%00user", ops("stat")),
            "The provided path contains a NUL byte, which no file name can carry.".into(),
        ),
        (
            ops("ls"),
            "Unable to decode request and retreive the required path or source_path parameter."
                .into(),
        ),
    ];
    for (url, message) in cases {
        let (status, body) = client.call(Method::GET, &url, None).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["message"], message.as_str(), "{url}");
        assert_eq!(body["user"], "fireuser");
    }
    let (status, body) = client
        .call(Method::POST, &ops("mkdir"), Some(json!({"path": null})))
        .await;
    assert_eq!(
        (status.as_u16(), body["message"].as_str()),
        (
            400,
            Some("All filesystem requests require a path or source_path parameter.")
        )
    );
    let (status, body) = client
        .call(Method::POST, &ops("mkdir"), Some(json!({"parent": true})))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = client
        .call(
            Method::POST,
            &ops("compress"),
            Some(json!({"path": HOME, "targetPath": "/home/fireuser/x.zip", "compression": "zip"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["errorType"].as_str()),
        (400, Some("validation")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("zip"), "{body}");
    let (status, body) = client
        .call(
            Method::POST,
            &ops("symlink"),
            Some(json!({"path": "/home/fireuser/x", "linkPath": "/tmp/x"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("(/tmp/x)"));
}

#[tokio::test]
async fn another_users_file_is_403_and_a_missing_one_404() {
    let client = Client::start().await;
    let dir = WorkDir::new("denied");
    let secret = dir.file(b"secret", b"no");
    let firesrv = uid("firesrv");
    std::os::unix::fs::chown(&secret, Some(firesrv), Some(gid("firesrv"))).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    for op in ["head", "tail", "view", "checksum", "download"] {
        let (status, body) = client.get(op, secret.as_os_str().as_bytes(), "").await;
        assert_eq!(status, 403, "{op}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Permission denied"),
            "{op}: {body}"
        );
    }
    let missing = format!("{}/missing", dir.str());
    for op in [
        "ls", "head", "tail", "view", "checksum", "file", "stat", "download",
    ] {
        let (status, body) = client.get(op, missing.as_bytes(), "").await;
        assert_eq!(status, 404, "{op}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("Remote process failed with exit status:"),
            "{op}: {message}"
        );
        assert!(
            message.contains("No such file or directory"),
            "{op}: {message}"
        );
    }
}

#[tokio::test]
async fn a_command_past_the_time_limit_is_408() {
    let server = TestServer::start_with(|config| {
        config.clusters[0].ssh.timeout.command_execution = 1;
    })
    .await;
    let client = Client::with(server).await;
    let dir = WorkDir::new("timeout");
    let fifo = dir.path(b"fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    chown_fireuser(&fifo);
    let started = std::time::Instant::now();
    let (status, body) = client.get("head", fifo.as_os_str().as_bytes(), "").await;
    assert_eq!(status, 408, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn upload_and_download_are_byte_exact_and_bounded() {
    let server = TestServer::start_with(|config| {
        config.clusters[0].data_operation.max_ops_file_size = 300_000;
    })
    .await;
    let client = Client::with(server).await;
    let dir = WorkDir::new("transfer");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let response = client.upload(dir.str(), b"bin.dat", &content).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let stored = dir.path(b"bin.dat");
    assert_eq!(std::fs::read(&stored).unwrap(), content);
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o644
    );

    let response = client
        .server
        .http
        .get(format!(
            "{}{}?path={}",
            client.server.url,
            ops("download"),
            enc(stored.as_os_str().as_bytes())
        ))
        .bearer_auth(&client.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), content.as_slice());

    // Overwrites, and leaves no temporary file behind.
    let response = client.upload(dir.str(), b"bin.dat", b"small").await;
    assert_eq!(response.status(), 204);
    assert_eq!(std::fs::read(&stored).unwrap(), b"small");
    let listing = client
        .ok("ls", dir.str().as_bytes(), "&showHidden=true")
        .await;
    assert_eq!(names(&listing), ["bin.dat"]);

    let big = vec![b'x'; 300_001];
    let response = client.upload(dir.str(), b"big", &big).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "File to upload is too large.");
    assert!(!dir.path(b"big").exists());
    assert_eq!(
        others(&dir, "bin.dat"),
        Vec::<std::ffi::OsString>::new(),
        "no temporary file is left by a refused upload"
    );
    std::fs::write(dir.path(b"big"), &big).unwrap();
    let (status, body) = client
        .get("download", dir.path(b"big").as_os_str().as_bytes(), "")
        .await;
    assert_eq!(
        (status.as_u16(), body["message"].as_str()),
        (413, Some("File to download is too large."))
    );

    for bad in [&b"../escape"[..], b"a/b", b""] {
        let response = client.upload(dir.str(), bad, b"x").await;
        assert_eq!(response.status(), 400, "{bad:?}");
    }
    let response = client.upload("/etc", b"x", b"x").await;
    assert_eq!(response.status(), 400);
    let response = client
        .upload(&format!("{}/missing", dir.str()), b"x", b"x")
        .await;
    assert_eq!(response.status(), 404);
}

/// The directory's entry names other than `keep`.
fn others(dir: &WorkDir, keep: &str) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != keep)
        .collect()
}

/// Waits (up to 20 s) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn an_interrupted_upload_leaves_the_target_untouched() {
    let client = Client::start().await;
    let dir = WorkDir::new("atomic");
    let target = dir.file(b"keep.txt", b"original");
    // A body that announces more than it sends, then the connection closes.
    let boundary = "b0undary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"keep.txt\"\r\n\r\npartial data"
    );
    let url = client.server.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&url).await.unwrap();
    let request = format!(
        "POST {}?path={} HTTP/1.1\r\nHost: {url}\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n{head}",
        ops("upload"),
        enc(dir.str().as_bytes()),
        client.token
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    // The upload is under way: its temporary file exists beside the untouched target.
    eventually("the temporary file", || {
        !others(&dir, "keep.txt").is_empty()
    })
    .await;
    let temporary = others(&dir, "keep.txt");
    assert!(
        temporary[0].as_bytes().starts_with(b".ironcrest-upload."),
        "{temporary:?}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"original");
    drop(stream);
    eventually("the temporary file's removal", || {
        others(&dir, "keep.txt").is_empty()
    })
    .await;
    assert_eq!(std::fs::read(&target).unwrap(), b"original");
}

/// mkdir, symlink and chmod are served over SFTP; their answer must be the `ls -d` entry the
/// tools give.
#[tokio::test]
async fn changes_over_sftp_answer_as_the_tools() {
    let client = Client::start().await;
    let dir = WorkDir::new("sftp-change");
    // `ls -R` (always the tool) of the parent, the entry named by its full path as `ls -d`.
    let shown_by_ls = |path: String| {
        let client = &client;
        async move {
            let (parent, name) = path.rsplit_once('/').unwrap();
            let listing = client
                .ok("ls", parent.as_bytes(), "&recursive=true&showHidden=true")
                .await;
            let mut entry = listing
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name)
                .unwrap_or_else(|| panic!("{name:?} in {listing}"))
                .clone();
            entry["name"] = json!(path);
            entry
        }
    };
    let utf8: Vec<&str> = HOSTILE
        .iter()
        .filter_map(|name| std::str::from_utf8(name).ok())
        .collect();
    for name in &utf8 {
        let path = format!("{}/{name}", dir.str());
        let (status, made) = client
            .call(Method::POST, &ops("mkdir"), Some(json!({"path": path})))
            .await;
        assert_eq!(status, 201, "{made}");
        assert!(dir.path(name.as_bytes()).is_dir());
        assert_eq!(made["output"], shown_by_ls(path.clone()).await, "{name:?}");

        let link = format!("{}/link {name}", dir.str());
        let (status, linked) = client
            .call(
                Method::POST,
                &ops("symlink"),
                Some(json!({"path": path, "linkPath": link})),
            )
            .await;
        assert_eq!(status, 201, "{linked}");
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new(&path));
        assert_eq!(linked["output"], shown_by_ls(link).await, "{name:?}");

        let file = dir.file(format!("file {name}").as_bytes(), b"x");
        for mode in ["4754", "0", "640", "1777"] {
            let (status, changed) = client
                .call(
                    Method::PUT,
                    &ops("chmod"),
                    Some(json!({"path": file, "mode": mode})),
                )
                .await;
            assert_eq!(status, 200, "{changed}");
            let expected = u32::from_str_radix(mode, 8).unwrap();
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
                expected
            );
            let shown = shown_by_ls(file.to_str().unwrap().to_string()).await;
            assert_eq!(changed["output"], shown, "{name:?} {mode}");
        }
    }

    // `mkdir -p`: every missing parent, an existing directory is fine.
    let deep = format!("{}/p 1/p'2/p\n3", dir.str());
    for _ in 0..2 {
        let (status, made) = client
            .call(
                Method::POST,
                &ops("mkdir"),
                Some(json!({"path": deep, "parent": true})),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(made["output"], shown_by_ls(deep.clone()).await);
    }
    assert!(Path::new(&deep).is_dir());
    let through_file = format!("{}/file {}/sub", dir.str(), utf8[0]);
    let (status, body) = client
        .call(
            Method::POST,
            &ops("mkdir"),
            Some(json!({"path": through_file, "parent": true})),
        )
        .await;
    assert!(!status.is_success(), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Not a directory"),
        "{body}"
    );

    // A directory keeps its set-group-id bit under a numeric `chmod` (the tool's rule).
    let sgid = dir.path(b"sgid");
    std::fs::create_dir(&sgid).unwrap();
    chown_fireuser(&sgid);
    std::fs::set_permissions(&sgid, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let (status, changed) = client
        .call(
            Method::PUT,
            &ops("chmod"),
            Some(json!({"path": sgid, "mode": "750"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["output"]["permissions"], "rwxr-s---");

    // An existing file at the link path: `ln`'s own error.
    let (status, body) = client
        .call(
            Method::POST,
            &ops("symlink"),
            Some(json!({"path": deep, "linkPath": format!("{}/file {}", dir.str(), utf8[0])})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("File exists"),
        "{body}"
    );
}

#[tokio::test]
async fn compress_and_extract_with_every_compression() {
    let client = Client::start().await;
    let dir = WorkDir::new("tar");
    std::fs::create_dir(dir.path(b"src dir")).unwrap();
    chown_fireuser(&dir.path(b"src dir"));
    dir.file(b"src dir/a.txt", b"alpha");
    dir.file(b"src dir/b.log", b"beta");
    let source = format!("{}/src dir", dir.str());
    for (compression, ext) in [
        ("none", "tar"),
        ("gzip", "tar.gz"),
        ("bzip2", "tar.bz2"),
        ("xz", "tar.xz"),
    ] {
        let archive = format!("{}/out.{ext}", dir.str());
        let (status, body) = client.call(Method::POST, &ops("compress"), Some(json!({"source_path": source, "target_path": archive, "dereference": false, "compression": compression, "match_pattern": null}))).await;
        assert_eq!(status, 204, "{compression}: {body}");
        let into = format!("{}/x-{compression}", dir.str());
        std::fs::create_dir(&into).unwrap();
        chown_fireuser(Path::new(&into));
        let (status, body) = client.call(Method::POST, &ops("extract"), Some(json!({"source_path": archive, "target_path": into, "compression": compression}))).await;
        assert_eq!(status, 204, "{compression}: {body}");
        assert_eq!(
            std::fs::read(format!("{into}/src dir/a.txt")).unwrap(),
            b"alpha",
            "{compression}"
        );
        assert_eq!(
            std::fs::read(format!("{into}/src dir/b.log")).unwrap(),
            b"beta",
            "{compression}"
        );
    }
    let archive = format!("{}/pattern.tar.gz", dir.str());
    let (status, body) = client
        .call(
            Method::POST,
            &ops("compress"),
            Some(json!({"sourcePath": source, "targetPath": archive, "matchPattern": ".*\\.txt"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let listing = std::process::Command::new("tar")
        .args(["-tzf", &archive])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(listing.stdout).unwrap(),
        "./src dir/a.txt\n"
    );
    let (status, body) = client
        .call(
            Method::POST,
            &ops("compress"),
            Some(json!({"sourcePath": format!("{}/missing", dir.str()), "targetPath": archive})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = client.call(Method::POST, &ops("compress"), Some(json!({"sourcePath": format!("{}/missing", dir.str()), "targetPath": archive, "matchPattern": ".*"}))).await;
    assert_eq!(status, 404, "{body}");
}

/// Names FirecREST v2 mangles or is injected by; each must round-trip exactly.
const HOSTILE: &[&[u8]] = &[
    b"single'quote",
    b"$(touch PWNED)",
    b"`touch PWNED`",
    b"new\nline",
    b"tab\tname",
    b"-leading-dash",
    b"--help",
    b"glob*?[a]",
    b"back\\slash \"dq\"",
    b"semi;colon && touch PWNED",
    b"sp ace -> arrow",
    "ünïcødé".as_bytes(),
];

#[tokio::test]
async fn hostile_names_round_trip_without_injection() {
    let client = Client::start().await;
    let dir = WorkDir::new("hostile");
    let long = vec![b'L'; 255];
    let non_utf8 = b"bytes\xff\xfe\x80".to_vec();
    let mut names: Vec<Vec<u8>> = HOSTILE.iter().map(|n| n.to_vec()).collect();
    names.push(long);
    names.push(non_utf8.clone());
    for (i, name) in names.iter().enumerate() {
        let content = format!("content {i}\n");
        let path = dir.file(name, content.as_bytes());
        let p = path.as_os_str().as_bytes();
        let expected_name = if name == &non_utf8 {
            "bytes\\377\\376\\200".to_string()
        } else {
            String::from_utf8(name.clone()).unwrap()
        };

        let listing = client.ok("ls", dir.str().as_bytes(), "").await;
        assert!(
            listing
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == expected_name.as_str()),
            "{expected_name:?}: {listing}"
        );
        let stat = client.ok("stat", p, "").await;
        assert_eq!(stat["size"], content.len(), "{expected_name:?}");
        let head = client.ok("head", p, "").await;
        assert_eq!(head["content"], content.as_str(), "{expected_name:?}");
        let checksum = client.ok("checksum", p, "").await;
        assert_eq!(
            checksum["checksum"].as_str().unwrap().len(),
            64,
            "{expected_name:?}"
        );

        // symlink → chmod → rm, with the JSON body where the name is Unicode.
        if let Ok(text) = std::str::from_utf8(name) {
            let link = format!("{}/{}.link", dir.str(), text.get(..200).unwrap_or(text));
            let (status, body) = client
                .call(
                    Method::POST,
                    &ops("symlink"),
                    Some(json!({"path": path, "linkPath": link})),
                )
                .await;
            assert_eq!(status, 201, "{expected_name:?}: {body}");
            assert_eq!(
                body["output"]["linkTarget"].as_str(),
                path.to_str(),
                "{expected_name:?}"
            );
            let (status, body) = client
                .call(
                    Method::PUT,
                    &ops("chmod"),
                    Some(json!({"path": path, "mode": "600"})),
                )
                .await;
            assert_eq!(
                (status.as_u16(), body["output"]["permissions"].as_str()),
                (200, Some("rw-------")),
                "{expected_name:?}: {body}"
            );
            let (status, _) = client
                .call(
                    Method::DELETE,
                    &format!("{}?path={}", ops("rm"), enc(link.as_bytes())),
                    None,
                )
                .await;
            assert_eq!(status, 204);
        }
        let (status, _) = client
            .call(
                Method::DELETE,
                &format!("{}?path={}", ops("rm"), enc(p)),
                None,
            )
            .await;
        assert_eq!(status, 204, "{expected_name:?}");
        assert!(!path.exists(), "{expected_name:?}");
    }
    // Uploads with hostile file names land exactly.
    for name in HOSTILE
        .iter()
        .filter(|n| !n.contains(&b'\n') && !n.contains(&b'"'))
    {
        let response = client.upload(dir.str(), name, b"up").await;
        assert_eq!(
            response.status(),
            204,
            "{:?}",
            String::from_utf8_lossy(name)
        );
        assert_eq!(std::fs::read(dir.path(name)).unwrap(), b"up");
    }
    assert!(!dir.path(b"PWNED").exists());
    assert!(!Path::new(&format!("{HOME}/PWNED")).exists());
}

#[tokio::test]
async fn a_path_on_an_unhealthy_file_system_is_503() {
    let server = TestServer::start_with(|config| {
        config.clusters[0].file_systems.push(FileSystemConfig {
            path: "/nonexistent-fs".into(),
            data_type: FileSystemDataType::Scratch,
            default_work_dir: false,
        });
    })
    .await;
    let client = Client::with(server).await;
    client
        .server
        .wait_for_health(&client.token, |health| {
            health
                .iter()
                .any(|h| h["path"] == "/nonexistent-fs" && h["healthy"] == false)
        })
        .await;
    let (status, body) = client.get("ls", b"/nonexistent-fs/x", "").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["message"],
        format!("The requested filesystem (/nonexistent-fs on {SYSTEM}) is unhealthy.")
    );
    // The healthy one still answers.
    client.ok("ls", HOME.as_bytes(), "").await;
}

/// `ls` of a flat directory is served over SFTP, `ls` with `recursive=true` runs the tool:
/// on a directory whose only subdirectory is empty both must give the same `File`s, for
/// hostile names, links, hidden files, special permission bits and numeric ids. Likewise
/// `head` and `view` (SFTP reads) against `head` with `skipTrailing` and `tail` (tools).
/// That SFTP is used without any command is shown by the ssh crate's pool tests.
#[tokio::test]
async fn sftp_results_equal_the_tools_results() {
    let client = Client::start().await;
    let dir = WorkDir::new("sftp-equal");
    for (i, name) in HOSTILE.iter().enumerate() {
        dir.file(name, format!("content {i}\n").as_bytes());
    }
    dir.file(&[b'L'; 255], b"long");
    dir.file(b".hidden", b"dot");
    let special = dir.file(b"setuid", b"#!/bin/sh\n");
    std::fs::set_permissions(&special, std::fs::Permissions::from_mode(0o4754)).unwrap();
    std::fs::create_dir(dir.path(b"sticky dir")).unwrap();
    chown_fireuser(&dir.path(b"sticky dir"));
    std::fs::set_permissions(
        dir.path(b"sticky dir"),
        std::fs::Permissions::from_mode(0o1770),
    )
    .unwrap();
    std::os::unix::fs::symlink("$(touch PWNED) -> x\n", dir.path(b"link -> 'odd'")).unwrap();
    chown_fireuser(&dir.path(b"link -> 'odd'"));
    std::os::unix::fs::symlink("/", dir.path(b"root link")).unwrap();

    for query in [
        "",
        "&showHidden=true",
        "&numericUid=true",
        "&showHidden=true&numericUid=true",
    ] {
        let over_sftp = client.ok("ls", dir.str().as_bytes(), query).await;
        let by_ls = client
            .ok(
                "ls",
                dir.str().as_bytes(),
                &format!("{query}&recursive=true"),
            )
            .await;
        assert_eq!(over_sftp, by_ls, "query {query:?}");
        assert!(
            over_sftp.as_array().unwrap().len() >= HOSTILE.len() + 4,
            "{over_sftp}"
        );
    }

    // Readable but not searchable: `ls` fails on every entry, SFTP must not list none.
    let blind = dir.path(b"blind");
    std::fs::create_dir(&blind).unwrap();
    dir.file(b"blind/inside", b"x");
    chown_fireuser(&blind);
    std::fs::set_permissions(&blind, std::fs::Permissions::from_mode(0o640)).unwrap();
    let blind = blind.as_os_str().as_bytes();
    let flat = client.get("ls", blind, "").await;
    assert_eq!(flat, client.get("ls", blind, "&recursive=true").await);
    assert_ne!(flat.0, 200, "{flat:?}");
    std::fs::set_permissions(dir.path(b"blind"), std::fs::Permissions::from_mode(0o750)).unwrap();

    let text: Vec<u8> = (0..3000)
        .flat_map(|i| format!("line {i} of some thirty bytes\n").into_bytes())
        .collect();
    let file = dir.file(b"big text", &text);
    let path = file.as_os_str().as_bytes();
    let len = text.len();
    for bytes in [1, 100, 70_000, len] {
        let read = client.ok("head", path, &format!("&bytes={bytes}")).await;
        let by_head = client
            .ok(
                "head",
                path,
                &format!("&bytes={}&skipTrailing=true", len - bytes),
            )
            .await;
        assert_eq!(read["content"], by_head["content"], "{bytes} bytes");
    }
    for lines in [1, 10, 2999, 3000] {
        let read = client.ok("head", path, &format!("&lines={lines}")).await;
        let by_head = client
            .ok(
                "head",
                path,
                &format!("&lines={}&skipTrailing=true", 3000 - lines),
            )
            .await;
        assert_eq!(read["content"], by_head["content"], "{lines} lines");
    }
    let read = client.ok("head", path, "&lines=5000").await;
    assert_eq!(read["content"].as_str().unwrap().as_bytes(), text);
    let viewed = client
        .ok(
            "view",
            path,
            &format!("&offset={}&size=70000", len - 70_000),
        )
        .await;
    let by_tail = client.ok("tail", path, "&bytes=70000").await;
    assert_eq!(viewed, by_tail["content"]);
}

/// Concurrent `stat`s of one user are coalesced into batches: each must still get its own
/// path's data (hostile names included, with and without `dereference`), and a missing or
/// unreadable path its own error, exactly as when it is asked alone.
#[tokio::test]
async fn concurrent_stats_each_get_their_own_answer() {
    let client = Client::start().await;
    let dir = WorkDir::new("stat-batch");
    let mut paths: Vec<PathBuf> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, name)| dir.file(name, &vec![b'x'; i]))
        .collect();
    let link = dir.path(b"link\nto first");
    std::os::unix::fs::symlink(&paths[0], &link).unwrap();
    paths.push(link);
    let missing = dir.path(b"missing\nname");
    let locked = dir.path(b"locked");
    std::fs::create_dir(&locked).unwrap();
    let hidden = dir.file(b"locked/inside", b"x");
    std::os::unix::fs::chown(&locked, Some(uid("firesrv")), Some(gid("firesrv"))).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();

    let alone_missing = client.get("stat", missing.as_os_str().as_bytes(), "").await;
    let alone_hidden = client.get("stat", hidden.as_os_str().as_bytes(), "").await;
    assert_eq!(alone_missing.0, 404, "{:?}", alone_missing.1);
    assert_eq!(alone_hidden.0, 403, "{:?}", alone_hidden.1);

    let mut requests = Vec::new();
    for round in 0..3 {
        for path in &paths {
            for query in ["", "&dereference=true"] {
                requests.push((path.clone(), query, round));
            }
        }
        requests.push((missing.clone(), "", round));
        requests.push((hidden.clone(), "&dereference=true", round));
    }
    let answers = futures::future::join_all(
        requests
            .iter()
            .map(|(path, query, _)| client.get("stat", path.as_os_str().as_bytes(), query)),
    )
    .await;
    for ((path, query, _), (status, body)) in requests.iter().zip(answers) {
        if *path == missing {
            assert_eq!((status, &body), (alone_missing.0, &alone_missing.1));
            continue;
        }
        if *path == hidden {
            assert_eq!((status, &body), (alone_hidden.0, &alone_hidden.1));
            continue;
        }
        assert_eq!(status, 200, "{path:?}{query}: {body}");
        let meta = if query.is_empty() {
            std::fs::symlink_metadata(path).unwrap()
        } else {
            std::fs::metadata(path).unwrap()
        };
        let output = &body["output"];
        assert_eq!(output["ino"], meta.ino(), "{path:?}{query}");
        assert_eq!(output["size"], meta.size(), "{path:?}{query}");
        assert_eq!(output["mode"], meta.mode(), "{path:?}{query}");
        assert_eq!(output["nlink"], meta.nlink(), "{path:?}{query}");
    }
}

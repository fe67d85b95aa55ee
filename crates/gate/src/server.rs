//! The HTTP front of the mirrors: `git http-backend` run as a CGI program for the
//! smart-protocol routes of one repository, and nothing else. A request needs HTTP Basic with
//! a live gate token as the user name (none → 401, unknown → 403), the token must be bound to
//! the repository asked for (→ 403), only `/<repo>.git/{info/refs,HEAD,git-upload-pack,
//! git-receive-pack}` exist (→ 404), a malformed `Content-Length` is refused (→ 400) and no
//! body may exceed [`MAX_BODY_BYTES`] (→ 413). Repository hooks never run; what a push drops
//! is kept under [`crate::BACKUP_PREFIX`]. A push may change only branches: not the source's,
//! not another task's, never a tag or any other ref.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout};

use crate::error::GateError;
use crate::git;
use crate::mirror::{MirrorStore, back_up_dropped, last_pushers, lock_mirror, record_pushes};
use crate::spool::{self, BodyError, MAX_BODY_BYTES};
use crate::tokens::{TokenGrant, TokenStore};

/// The realm of the gate's `WWW-Authenticate` challenge.
pub const REALM: &str = "terok gate";

/// What the handler needs.
#[derive(Debug)]
struct Gate {
    mirrors: MirrorStore,
    tokens: TokenStore,
    /// The one task whose tokens this front admits (a task's own socket), or any task.
    task: Option<String>,
    limits: GateLimits,
    /// Places for git runs: a request waits for one, so a task cannot start git (and its
    /// memory) without bound.
    runs: Arc<tokio::sync::Semaphore>,
    /// Held (shared) by every push until its bookkeeping is done; see [`PushesInFlight`].
    pushes: Arc<tokio::sync::RwLock<()>>,
}

/// git runs one front serves at once.
pub const MAX_GIT_RUNS: usize = 4;

/// How long the parts of a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// The longest a push may take, its body, git and all (→ 408).
    pub push: Duration,
    /// The longest a request body may pause between two pieces (the request fails).
    pub body_idle: Duration,
    /// The longest a push waits for another push or sync of the same mirror (→ 503).
    pub lock_wait: Duration,
}

impl Default for GateLimits {
    fn default() -> Self {
        Self {
            push: Duration::from_secs(15 * 60),
            body_idle: Duration::from_secs(60),
            lock_wait: Duration::from_secs(5 * 60),
        }
    }
}

/// A front of the gate: its routes, and the pushes it has under way.
#[derive(Debug)]
pub struct GateFront {
    /// The routes, to serve on a listener.
    pub router: Router,
    /// What a server waits on before it exits.
    pub pushes: PushesInFlight,
}

/// The pushes of a front whose bookkeeping (backing up, logging) is not done yet.
#[derive(Debug, Clone)]
pub struct PushesInFlight(Arc<tokio::sync::RwLock<()>>);

impl PushesInFlight {
    /// Returns once no push is under way: a server that stops serving waits for this, so no
    /// push is cut off between git changing refs and the gate backing up what it dropped.
    /// Pushes that arrive meanwhile wait until it has returned.
    pub async fn finished(&self) {
        let _all = self.0.write().await;
    }

    /// Whether a push is under way now.
    pub fn under_way(&self) -> bool {
        self.0.try_write().is_err()
    }
}

/// A front of the gate over `mirrors`, admitting the live tokens of `tokens` — those of
/// `task` only, when given (a task's own socket, so a token that leaked from another task is
/// refused there even for its own repository).
pub fn front(
    mirrors: MirrorStore,
    tokens: TokenStore,
    task: Option<&str>,
    limits: GateLimits,
) -> GateFront {
    let pushes = Arc::new(tokio::sync::RwLock::new(()));
    let gate = Gate {
        mirrors,
        tokens,
        task: task.map(str::to_owned),
        limits,
        runs: Arc::new(tokio::sync::Semaphore::new(MAX_GIT_RUNS)),
        pushes: Arc::clone(&pushes),
    };
    GateFront {
        router: Router::new().fallback(handle).with_state(Arc::new(gate)),
        pushes: PushesInFlight(pushes),
    }
}

/// The routes of a front admitting every live token of `tokens`, with the default limits.
pub fn router(mirrors: MirrorStore, tokens: TokenStore) -> Router {
    front(mirrors, tokens, None, GateLimits::default()).router
}

/// One of the routes git's smart HTTP protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    InfoRefs,
    Head,
    UploadPack,
    ReceivePack,
}

impl Service {
    fn parse(rest: &str) -> Option<Self> {
        Some(match rest {
            "info/refs" => Self::InfoRefs,
            "HEAD" => Self::Head,
            "git-upload-pack" => Self::UploadPack,
            "git-receive-pack" => Self::ReceivePack,
            _ => return None,
        })
    }

    fn path(self) -> &'static str {
        match self {
            Self::InfoRefs => "info/refs",
            Self::Head => "HEAD",
            Self::UploadPack => "git-upload-pack",
            Self::ReceivePack => "git-receive-pack",
        }
    }

    fn method(self) -> Method {
        match self {
            Self::InfoRefs | Self::Head => Method::GET,
            Self::UploadPack | Self::ReceivePack => Method::POST,
        }
    }
}

/// The service of an `info/refs` query (`service=git-upload-pack|git-receive-pack`).
fn smart_service(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|pair| pair.strip_prefix("service="))
        .find(|s| matches!(*s, "git-upload-pack" | "git-receive-pack"))
}

/// `/<repo>.git/<service>` → the repository and the service; `None` for anything else.
fn route(path: &str) -> Option<(&str, Service)> {
    let (repo, rest) = path.strip_prefix('/')?.split_once(".git/")?;
    let repo_ok = !repo.is_empty()
        && repo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    repo_ok.then_some(())?;
    Some((repo, Service::parse(rest)?))
}

/// The user name of an HTTP Basic `Authorization` header.
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.as_str(), |(user, _)| user)
            .to_owned(),
    )
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, format!("{text}\n")).into_response()
}

async fn handle(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    let Some((repo, service)) = route(request.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let Some(user) = basic_user(request.headers()) else {
        let mut response = plain(StatusCode::UNAUTHORIZED, "a gate token is needed");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"terok gate\""),
        );
        return response;
    };
    let grant = match gate.tokens.lookup(&user) {
        Ok(Some(grant)) => grant,
        Ok(None) => return plain(StatusCode::FORBIDDEN, "unknown or revoked gate token"),
        Err(_) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the gate's tokens cannot be read",
            );
        }
    };
    if gate.task.as_ref().is_some_and(|task| *task != grant.task) {
        return plain(StatusCode::FORBIDDEN, "this token is for another task");
    }
    if grant.repo != repo {
        return plain(
            StatusCode::FORBIDDEN,
            "this token is for another repository",
        );
    }
    if request.method() != service.method() {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if let Some(value) = request.headers().get(header::CONTENT_LENGTH) {
        match value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(length) if length > MAX_BODY_BYTES => {
                return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
            }
            Some(_) => {}
            None => return plain(StatusCode::BAD_REQUEST, "malformed Content-Length"),
        }
    }
    // The dumb protocol's ref list would name every ref, the hidden ones too.
    if service == Service::InfoRefs && smart_service(request.uri().query()).is_none() {
        return plain(StatusCode::FORBIDDEN, "only git's smart protocol is served");
    }
    if !gate.mirrors.exists(repo) {
        return plain(StatusCode::NOT_FOUND, "no such repository");
    }
    let Ok(place) = Arc::clone(&gate.runs).acquire_owned().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "the gate is shutting down");
    };
    let cgi = Cgi {
        root: gate.mirrors.root().to_path_buf(),
        repo: repo.to_owned(),
        service,
        grant,
        limits: gate.limits,
        place,
    };
    let served = match service {
        // Spawned: a client that goes away mid-push does not cut the push's bookkeeping
        // short — what git changed is backed up and logged whatever happens to the request.
        Service::ReceivePack => {
            let in_flight = Arc::clone(&gate.pushes).read_owned().await;
            tokio::spawn(async move {
                let answer = cgi.receive(request).await;
                drop(in_flight);
                answer
            })
            .await
            .unwrap_or(Err(StatusCode::INTERNAL_SERVER_ERROR))
        }
        _ => cgi.serve(request).await,
    };
    match served {
        Ok(response) => response,
        Err(status) => plain(status, "the gate could not serve this request"),
    }
}

/// One `git http-backend` run.
struct Cgi {
    root: PathBuf,
    repo: String,
    service: Service,
    grant: TokenGrant,
    limits: GateLimits,
    /// Its place among the front's git runs, held until git is done.
    place: tokio::sync::OwnedSemaphorePermit,
}

impl Cgi {
    /// A fetch: git's answer streamed back.
    async fn serve(self, request: Request) -> Result<Response, StatusCode> {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().unwrap_or("");
        let mut child = self.spawn(&parts.headers, query, None, std::process::Stdio::piped())?;
        let group = ProcessGroup::of(&child);
        let stdin = child
            .stdin
            .take()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        tokio::spawn(feed(body, stdin, self.limits.body_idle));
        let mut stdout = BufReader::new(
            child
                .stdout
                .take()
                .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?,
        );
        let (status, headers) = read_cgi_headers(&mut stdout).await?;
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        response
            .body(stream_output(stdout, (group, child, self.place)))
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A push, under the mirror's lock (no other push or sync moves its refs meanwhile): git
    /// applies it, refused where it would change anything but a branch of the agent's own;
    /// then every tip it dropped is backed up and every ref it changed logged, even when the
    /// request failed. One deadline bounds it all, body included.
    async fn receive(self, request: Request) -> Result<Response, StatusCode> {
        let (parts, body) = request.into_parts();
        let dir = self.root.join(format!("{}.git", self.repo));
        let deadline = tokio::time::Instant::now() + self.limits.push;
        // git never compresses a push, and its command list is read before git runs.
        if parts.headers.contains_key(header::CONTENT_ENCODING) {
            return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        let spool_dir = self.root.join(SPOOL_DIR);
        let spooling = spool::spool(body, &spool_dir, self.limits.body_idle);
        let body = tokio::time::timeout_at(deadline, spooling)
            .await
            .unwrap_or(Err(BodyError::Broken))
            .map_err(refusal)?;
        let commands = spool::commands(&body).map_err(refusal)?;
        let _lock = lock_mirror(&dir, self.limits.lock_wait)
            .await
            .map_err(|err| match err {
                GateError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            })?;
        let rules = push_rules(&dir, &self.grant.task)
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        if rules.owned + commands.created > MAX_BRANCHES_PER_TASK {
            return Err(StatusCode::INSUFFICIENT_STORAGE);
        }
        let before = git::refs(&dir)
            .await
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let config = write_receive_config(&dir, &rules.refused)?;
        let stdin = body.stdin().map_err(refusal)?;
        let query = parts.uri.query().unwrap_or("");
        let mut child = self.spawn(&parts.headers, query, Some(&config), stdin)?;
        let group = ProcessGroup::of(&child);
        let stdout = child
            .stdout
            .take()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        let answered =
            tokio::time::timeout_at(deadline, answer_whole(BufReader::new(stdout), &mut child))
                .await
                .unwrap_or(Err(StatusCode::REQUEST_TIMEOUT));
        // Whatever is left of git (the deadline) goes now.
        drop(group);
        let kept = back_up_dropped(&dir, &before).await;
        let logged = record_pushes(&dir, &self.grant.task, &before).await;
        let (status, headers, answer) = answered?;
        if kept.is_err() || logged.is_err() {
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        }
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        response
            .body(Body::from(answer))
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn spawn(
        &self,
        headers: &HeaderMap,
        query: &str,
        receive_config: Option<&Path>,
        stdin: std::process::Stdio,
    ) -> Result<Child, StatusCode> {
        let header = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let mut command = git::limited_command().ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        command
            .args(["-c", "http.getanyfile=false"])
            .args(["-c", &format!("receive.maxInputSize={MAX_BODY_BYTES}")]);
        match receive_config {
            // A file, not `-c`: the list can be longer than one environment variable holds
            // (and `-c` would be read after it, overriding it).
            Some(config) => {
                command.env("GIT_CONFIG_GLOBAL", config);
            }
            // What a push is shown before it starts (`info/refs?service=git-receive-pack`):
            // branches only, as for a fetch.
            None => {
                command.args([
                    "-c",
                    "receive.hideRefs=refs",
                    "-c",
                    "receive.hideRefs=!refs/heads",
                ]);
            }
        }
        // No CONTENT_LENGTH: given one, git loops forever on a body that ends early; without
        // it, git reads to the end of what the gate feeds, which the gate bounds itself.
        command
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env(
                "PATH_INFO",
                format!("/{}.git/{}", self.repo, self.service.path()),
            )
            .env("REQUEST_METHOD", self.service.method().as_str())
            .env("QUERY_STRING", query)
            .env("CONTENT_TYPE", header(header::CONTENT_TYPE))
            .env("REMOTE_USER", &self.grant.task)
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            // A group of its own, so git's own children (receive-pack, index-pack) go with it.
            .process_group(0);
        let encoding = header(header::CONTENT_ENCODING);
        if !encoding.is_empty() {
            command.env("HTTP_CONTENT_ENCODING", encoding);
        }
        if let Some(protocol) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
            command.env("GIT_PROTOCOL", protocol);
        }
        command
            .spawn()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Where push bodies are spooled, under the mirrors' directory (no route reaches it).
const SPOOL_DIR: &str = ".spool";
/// The most branches one task may have pushed last in a mirror: each is one more entry git
/// checks every other task's push against.
pub const MAX_BRANCHES_PER_TASK: usize = 1000;

/// The answer to a push body refused before git ran.
fn refusal(error: BodyError) -> StatusCode {
    match error {
        BodyError::TooLarge | BodyError::TooManyRefs => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::Broken | BodyError::Malformed => StatusCode::BAD_REQUEST,
    }
}

/// What a push by one task may do in a mirror.
struct PushRules {
    /// The refs it may not change, for `receive.hideRefs` (git's names: bytes).
    refused: Vec<Vec<u8>>,
    /// The branches the task pushed last.
    owned: usize,
}

/// What a push by `task` may do: the branches it pushed last, and the refs it may not change
/// (names as git has them: bytes): every ref but
/// branches (`receive.hideRefs` takes prefixes, the last match winning); the source's
/// branches (as the last sync saw them: an agent cannot move a branch another task clones or
/// a review diffs against); the branches another task pushed last (a task cannot add to what
/// will be reviewed as another's work); and any branch whose name is not UTF-8 (whose pusher
/// the log, which is text, cannot tell).
async fn push_rules(dir: &Path, task: &str) -> Result<PushRules, GateError> {
    let names = git::raw_ref_names(dir).await?;
    let pushers = last_pushers(dir);
    let source = crate::mirror::SOURCE_PREFIX.as_bytes();
    let mut refused = vec![b"refs".to_vec(), b"!refs/heads".to_vec()];
    let mut owned = 0;
    for name in &names {
        if let Some(branch) = name.strip_prefix(source) {
            refused.push([b"refs/heads/".as_slice(), branch].concat());
        } else if name.starts_with(b"refs/heads/") {
            let pusher = std::str::from_utf8(name).map(|text| pushers.get(text));
            match pusher {
                Ok(Some(pusher)) if pusher == task => owned += 1,
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => refused.push(name.clone()),
            }
        }
    }
    Ok(PushRules { refused, owned })
}

/// Writes the configuration of a push's git (`receive.hideRefs`, one per ref of `refused`)
/// into the mirror, where the mirror's lock keeps it the push's own; its path.
fn write_receive_config(dir: &Path, refused: &[Vec<u8>]) -> Result<PathBuf, StatusCode> {
    let mut config = b"[receive]\n".to_vec();
    for reference in refused {
        // Quoted: a ref name may hold `#` or `;`, which would start a comment; `"` is
        // escaped; a ref name never holds a backslash or a newline.
        config.extend_from_slice(b"\thideRefs = \"");
        for &byte in reference {
            if byte == b'"' {
                config.push(b'\\');
            }
            config.push(byte);
        }
        config.extend_from_slice(b"\"\n");
    }
    let path = dir.join("terok-receive.config");
    terok_core::secure_fs::write_atomic(&path, &config, 0o600)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(path)
}

/// A CGI answer read whole: status, headers, body; git waited for.
async fn answer_whole(
    mut stdout: BufReader<ChildStdout>,
    child: &mut Child,
) -> Result<(StatusCode, Vec<(String, String)>, Vec<u8>), StatusCode> {
    let (status, headers) = read_cgi_headers(&mut stdout).await?;
    let mut answer = Vec::new();
    stdout
        .read_to_end(&mut answer)
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let _ = child.wait().await;
    Ok((status, headers, answer))
}

/// The process group of a git run: killed, whatever is left of it, when dropped.
struct ProcessGroup(Option<rustix::process::Pid>);

impl ProcessGroup {
    fn of(child: &Child) -> Self {
        Self(
            child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?)),
        )
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Copies the request body to git's stdin; an error when it exceeds [`MAX_BODY_BYTES`] (git
/// then sees its input end early and fails the push), breaks off, or pauses longer than
/// `idle`.
async fn feed(
    body: Body,
    mut stdin: tokio::process::ChildStdin,
    idle: Duration,
) -> Result<(), BodyError> {
    spool::copy_body(body, &mut stdin, idle).await?;
    stdin.shutdown().await.map_err(|_| BodyError::Broken)
}

/// The CGI response head: `Status:` and the other header lines, up to the blank line.
async fn read_cgi_headers(
    stdout: &mut BufReader<ChildStdout>,
) -> Result<(StatusCode, Vec<(String, String)>), StatusCode> {
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        let read = stdout
            .read_line(&mut line)
            .await
            .map_err(|_| StatusCode::BAD_GATEWAY)?;
        let line = line.trim_end_matches(['\r', '\n']);
        if read == 0 || line.is_empty() {
            break;
        }
        if headers.len() > 64 {
            return Err(StatusCode::BAD_GATEWAY);
        }
        let (name, value) = line.split_once(':').ok_or(StatusCode::BAD_GATEWAY)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or(StatusCode::BAD_GATEWAY)?;
        } else {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok((status, headers))
}

/// The rest of git's output as the response body, the process kept until it ends (and its
/// group killed when the response is dropped early: a client that went away).
fn stream_output(
    stdout: BufReader<ChildStdout>,
    run: (ProcessGroup, Child, tokio::sync::OwnedSemaphorePermit),
) -> Body {
    let stream = futures_util::stream::unfold(
        // The group first: it is killed while the unwaited child still holds its id.
        (stdout, Some(run)),
        |(mut stdout, child)| async move {
            let mut buf = vec![0u8; 64 * 1024];
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(buf)),
                        (stdout, child),
                    ))
                }
            }
        },
    );
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_smart_protocol_routes_of_a_repository_exist() {
        assert_eq!(
            route("/widget-1a2b3c4d.git/info/refs"),
            Some(("widget-1a2b3c4d", Service::InfoRefs))
        );
        assert_eq!(
            route("/w.git/git-receive-pack"),
            Some(("w", Service::ReceivePack))
        );
        for path in [
            "/w.git/objects/info/packs",
            "/w.git/config",
            "/w.git/hooks/post-receive",
            "/../w.git/HEAD",
            "/a/b.git/HEAD",
            "/.git/HEAD",
            "/w.git/info/refs/x",
            "/w/HEAD",
        ] {
            assert_eq!(route(path), None, "{path}");
        }
    }

    #[test]
    fn the_user_name_of_basic_auth_is_the_token() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("terok-g-abc:");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(basic_user(&headers).as_deref(), Some("terok-g-abc"));
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_user(&headers), None);
    }
}

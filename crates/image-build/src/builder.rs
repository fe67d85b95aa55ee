//! [`ImageBuilder`]: makes sure the L0, L1 (and optionally sidecar) images of a base image and
//! selection exist and are current, building only the layers whose inputs changed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use terok_core::config::PackageFamily;
use terok_podman::{BuildSpec, ContainerRuntime, ImageInfo};
use terok_roster::Roster;

use crate::base_runtime::Unsuited;
use crate::context::{
    CaSource, ContextFiles, L0_SCRIPTS, collect_ca_certificates, decode_help_escapes,
};
use crate::error::ImageBuildError;
use crate::family::detect_family;
use crate::install_watch::{InstallWatch, parse_step};
use crate::layer::Layer;
use crate::tags::{TagSet, local};
use crate::templates::{
    RenderInput, SnippetAgent, render_l0, render_l1, render_sidecar, render_snippet,
};
use crate::{LABEL_CONTENT_HASH, LABEL_LAYER};

/// Label recording the package family an image was built for.
pub const LABEL_FAMILY: &str = "ai.terok.family";

/// `terok-vault:<the base's tag>`: the vault sidecar's image on `base`.
pub fn vault_tag(base: &str) -> String {
    let (_, tag) = crate::reference::split_reference(base);
    let tag: String = tag
        .unwrap_or("latest")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    format!("terok-vault:{tag}")
}

/// Where the vault image has the executor's binary.
pub const VAULT_PROGRAM: &str = "/usr/local/bin/terok-executor";

/// Progress of [`ImageBuilder::ensure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A layer is being checked or built.
    LayerStarted {
        /// The layer.
        layer: Layer,
        /// Its tag.
        tag: String,
    },
    /// podman reached step `current` of `total` (`STEP 3/15: RUN …`).
    Step {
        /// The layer.
        layer: Layer,
        /// Step number.
        current: u32,
        /// Number of steps.
        total: u32,
        /// The instruction.
        text: String,
    },
    /// A line of podman's output.
    Output {
        /// The layer.
        layer: Layer,
        /// The line.
        line: String,
    },
    /// An entry of `all` was left out of the selection: it cannot work on the base.
    LeftOut(Unsuited),
    /// The layer's steps are squashed into one filesystem layer: built step by step, the image
    /// would have `layers` layers, more than a task container can start from (`limit`).
    Squashed {
        /// The layer.
        layer: Layer,
        /// How many filesystem layers it would have had.
        layers: usize,
        /// The most a task container can start from.
        limit: usize,
    },
    /// A layer is ready.
    LayerFinished {
        /// The layer.
        layer: Layer,
        /// Its tag.
        tag: String,
        /// Its image id.
        image_id: String,
        /// Whether an existing, current image was reused (no build ran).
        reused: bool,
        /// How long it took.
        duration: Duration,
    },
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    /// Base image of L0.
    pub base_image: String,
    /// Package family, when the base image's name does not say.
    pub family: Option<PackageFamily>,
    /// Roster entries for L1 (already resolved, dependencies included).
    pub selection: Vec<String>,
    /// Rebuild the agent layers (cache bust) even when current.
    pub rebuild: bool,
    /// Rebuild everything without podman's cache (and pull the base again).
    pub full_rebuild: bool,
    /// Also build the sidecar image of this roster entry (one with a `sidecar:` section).
    pub sidecar: Option<String>,
    /// Extra CA certificates for L0.
    pub ca: CaSource,
    /// A Dockerfile fragment appended to L1.
    pub user_snippet: Option<String>,
    /// Entries an `all` selection left out because they cannot work on the base (reported
    /// as [`BuildEvent::LeftOut`]; not installed).
    pub left_out: Vec<Unsuited>,
}

impl BuildRequest {
    /// A request for `base` and `selection` with defaults for everything else.
    pub fn new(base: impl Into<String>, selection: Vec<String>) -> Self {
        Self {
            base_image: base.into(),
            family: None,
            selection,
            rebuild: false,
            full_rebuild: false,
            sidecar: None,
            ca: CaSource::default(),
            user_snippet: None,
            left_out: Vec::new(),
        }
    }
}

/// One image that is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Tag.
    pub tag: String,
    /// Image id.
    pub id: String,
    /// Whether it was reused without building.
    pub reused: bool,
    /// Content hash of its inputs.
    pub content_hash: String,
}

/// The images of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImages {
    /// Package family used.
    pub family: PackageFamily,
    /// L0.
    pub l0: BuiltImage,
    /// L1 (tagged with the selection tag and the alias).
    pub l1: BuiltImage,
    /// The alias tag L1 also carries.
    pub l1_alias: String,
    /// Sidecar, when asked for.
    pub sidecar: Option<BuiltImage>,
}

/// Builds images through a [`ContainerRuntime`].
pub struct ImageBuilder<'a, R> {
    runtime: &'a R,
    roster: &'a Roster,
    lock_dir: Option<PathBuf>,
    /// Where check results are recorded, and for how long a launch trusts them.
    stamps: Option<(PathBuf, Option<Duration>)>,
}

/// The L0 build context of `request`: the Dockerfile, its scripts, the CA certificates.
fn l0_files(
    request: &BuildRequest,
    family: PackageFamily,
) -> Result<ContextFiles, ImageBuildError> {
    let certs = collect_ca_certificates(&request.ca)?;
    let mut files = ContextFiles::new(render_l0(family)?);
    files.add_scripts(Some(L0_SCRIPTS));
    files.add_tmux();
    files.add("ca/.keep", Vec::<u8>::new(), false);
    for (name, contents) in certs {
        files.add(format!("ca/{name}"), contents, false);
    }
    Ok(files)
}

/// The file in `dir` recording the last full check of the images behind `l1_tag` (see
/// [`ImageBuilder::with_stamps`]); delete it to make the next launch ask podman.
pub fn stamp_file(dir: &std::path::Path, l1_tag: &str) -> PathBuf {
    let name: String = l1_tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{name}.json"))
}

/// The outcome of the last full check of a base image and selection.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Stamp {
    base_image: String,
    base_id: String,
    family: String,
    l0_tag: String,
    l0_id: String,
    l0_hash: String,
    l1_tag: String,
    l1_id: String,
    l1_hash: String,
    l1_alias: String,
    written_unix: i64,
}

impl<'a, R: ContainerRuntime> ImageBuilder<'a, R> {
    /// A builder using `runtime` and the install snippets of `roster`.
    pub fn new(runtime: &'a R, roster: &'a Roster) -> Self {
        Self {
            runtime,
            roster,
            lock_dir: None,
            stamps: None,
        }
    }

    /// Records each full check in `dir`; with `trust_for`, a later `ensure` whose inputs are
    /// unchanged trusts a record younger than that instead of asking podman (launches). An
    /// image removed behind terok's back within that time makes the launch fail with podman's
    /// "image not known"; [`Self::forget_stamp`] then sends the next one to podman.
    pub fn with_stamps(mut self, dir: impl Into<PathBuf>, trust_for: Option<Duration>) -> Self {
        self.stamps = Some((dir.into(), trust_for));
        self
    }

    /// Serializes builds of the same base across processes with lock files in `dir`.
    pub fn with_lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    /// The tags `request` resolves to (no podman call).
    pub fn tags(request: &BuildRequest) -> TagSet {
        TagSet::new(&request.base_image, &request.selection)
    }

    /// Makes sure every image of `request` exists and is current; builds what is missing or
    /// stale. `on_event` receives progress.
    pub async fn ensure(
        &self,
        request: &BuildRequest,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<BuiltImages, ImageBuildError> {
        self.check_base_suits(request)?;
        for entry in &request.left_out {
            on_event(BuildEvent::LeftOut(entry.clone()));
        }
        let tags = Self::tags(request);
        let family = self.family(request, &tags).await?;
        let _lock = self.lock(&tags.l0).await?;
        let inputs = self.inputs(request, tags, family)?;
        if let Some(built) = self.trusted_recent_check(request, &inputs, on_event) {
            return Ok(built);
        }
        let known = self.known_images(request, &inputs.tags).await?;
        let l0 = self.ensure_l0(request, &inputs, &known, on_event).await?;
        let l1 = self
            .ensure_l1(request, &inputs, &known, &l0, on_event)
            .await?;
        let sidecar = self.ensure_sidecar(request, &inputs, &l0, on_event).await?;
        self.write_stamp(&Stamp {
            base_image: request.base_image.clone(),
            base_id: known.base_id,
            family: family.as_str().to_owned(),
            l0_tag: l0.tag.clone(),
            l0_id: l0.id.clone(),
            l0_hash: l0.content_hash.clone(),
            l1_tag: l1.tag.clone(),
            l1_id: l1.id.clone(),
            l1_hash: l1.content_hash.clone(),
            l1_alias: inputs.tags.l1_alias.clone(),
            written_unix: terok_core::time::unix_now(),
        });
        Ok(BuiltImages {
            family,
            l0,
            l1,
            l1_alias: inputs.tags.l1_alias,
            sidecar,
        })
    }

    /// Makes sure the sidecar image of `request` (and the L0 under it) exists and is
    /// current, without the agent layer: a tool run needs no agents.
    pub async fn ensure_sidecar_only(
        &self,
        request: &BuildRequest,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<BuiltImage, ImageBuildError> {
        if request.sidecar.is_none() {
            return Err(ImageBuildError::NoSidecarRequested);
        }
        let tags = Self::tags(request);
        let family = self.family(request, &tags).await?;
        let _lock = self.lock(&tags.l0).await?;
        let inputs = self.inputs(request, tags, family)?;
        let known = self.known_images(request, &inputs.tags).await?;
        let l0 = self.ensure_l0(request, &inputs, &known, on_event).await?;
        self.ensure_sidecar(request, &inputs, &l0, on_event)
            .await?
            .ok_or(ImageBuildError::NoSidecarRequested)
    }

    /// Makes sure the vault image on `base` (the agent's image, so a node that pulled the
    /// agent pulls one layer more) exists and is current: `base` with `program` (the
    /// executor's binary, which serves `vault serve --sidecar`) at [`VAULT_PROGRAM`]. A
    /// different binary or base makes a different image.
    pub async fn ensure_vault(
        &self,
        base: &str,
        program: Vec<u8>,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<BuiltImage, ImageBuildError> {
        let base_info = (self.runtime.image_inspect(base).await?)
            .ok_or_else(|| ImageBuildError::Context(format!("the image {base} does not exist")))?;
        // The family its own layers were built for (the label every layer of ours carries).
        let family = match base_info.labels.get(LABEL_FAMILY).map(String::as_str) {
            Some("rpm") => PackageFamily::Rpm,
            _ => PackageFamily::Deb,
        };
        let base_id = base_info.id;
        let tag = vault_tag(base);
        let _lock = self.lock(&tag).await?;
        let mut files = ContextFiles::new(format!(
            "# terok vault: the agent's image with the executor's binary, which serves a Pod's\n\
             # vault sidecar (`vault serve --sidecar`).\n\
             ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nCOPY terok-executor {VAULT_PROGRAM}\n"
        ));
        files.add("terok-executor", program, true);
        let job = LayerJob {
            layer: Layer::Vault,
            existing: self.runtime.image_inspect(&tag).await?,
            tag,
            files: &files,
            inputs: vec![format!("base={base}@{base_id}")],
        };
        let how = LayerBuild {
            family,
            base: local(base),
            cache_bust: None,
            force: false,
            no_cache: false,
            pull_always: false,
            extra_tags: Vec::new(),
            squash: None,
        };
        self.layer(job, how, on_event).await
    }

    /// Refuses, before podman runs, a selection with entries that cannot work on the base.
    fn check_base_suits(&self, request: &BuildRequest) -> Result<(), ImageBuildError> {
        let unsuited =
            crate::base_runtime::unsuited(self.roster, &request.base_image, &request.selection);
        if unsuited.is_empty() {
            return Ok(());
        }
        Err(ImageBuildError::UnsuitableBase {
            base: request.base_image.trim().to_owned(),
            unsuited,
        })
    }

    /// Everything that feeds the layers of `request`, computed without podman.
    fn inputs(
        &self,
        request: &BuildRequest,
        tags: TagSet,
        family: PackageFamily,
    ) -> Result<Inputs, ImageBuildError> {
        Ok(Inputs {
            // L0: the Dockerfile, its scripts, the CA certificates (and the base image).
            l0_files: l0_files(request, family)?,
            // L1: install snippets of the selection, the scripts, the help lines (and L0).
            l1_files: self.l1_files(request, family)?,
            tags,
            family,
        })
    }

    /// The base image, L0 and L1 as podman knows them: one call for the three images a
    /// current setup has (the common case). A missing base is pulled first, because its id
    /// is an input of L0: the first check and every later one hash the same thing.
    async fn known_images(
        &self,
        request: &BuildRequest,
        tags: &TagSet,
    ) -> Result<KnownImages, ImageBuildError> {
        let mut known = self
            .runtime
            .image_inspect_many(&[request.base_image.clone(), tags.l0.clone(), tags.l1.clone()])
            .await?
            .into_iter();
        let (base, l0, l1) = (
            known.next().flatten(),
            known.next().flatten(),
            known.next().flatten(),
        );
        let base = match base {
            Some(info) => Some(info),
            None if !request.base_image.starts_with("localhost/") => {
                self.runtime.pull(&request.base_image).await?;
                self.runtime.image_inspect(&request.base_image).await?
            }
            None => None,
        };
        Ok(KnownImages {
            base_id: base.map(|i| i.id).unwrap_or_default(),
            l0,
            l1,
        })
    }

    /// L0 on the base image.
    async fn ensure_l0(
        &self,
        request: &BuildRequest,
        inputs: &Inputs,
        known: &KnownImages,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<BuiltImage, ImageBuildError> {
        let job = LayerJob {
            layer: Layer::L0,
            tag: inputs.tags.l0.clone(),
            files: &inputs.l0_files,
            inputs: vec![format!("base={}@{}", request.base_image, known.base_id)],
            existing: known.l0.clone(),
        };
        let how = LayerBuild {
            family: inputs.family,
            base: request.base_image.clone(),
            cache_bust: None,
            force: false,
            no_cache: request.full_rebuild,
            pull_always: request.full_rebuild && !request.base_image.starts_with("localhost/"),
            extra_tags: Vec::new(),
            squash: None,
        };
        self.layer(job, how, on_event).await
    }

    /// L1 on L0, tagged with the selection tag and the alias.
    async fn ensure_l1(
        &self,
        request: &BuildRequest,
        inputs: &Inputs,
        known: &KnownImages,
        l0: &BuiltImage,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<BuiltImage, ImageBuildError> {
        let tags = &inputs.tags;
        let squash = self.layers_beyond_limit(&tags.l0, &inputs.l1_files).await?;
        let job = LayerJob {
            layer: Layer::L1,
            tag: tags.l1.clone(),
            files: &inputs.l1_files,
            inputs: layer_inputs(format!("l0={}", l0.content_hash), squash),
            // A rebuilt L0 makes L1's recorded input stale anyway; reuse the answer.
            existing: known.l1.clone(),
        };
        let how = LayerBuild {
            family: inputs.family,
            base: local(&tags.l0),
            cache_bust: Some(("AGENT_CACHE_BUST", cache_bust(request.rebuild))),
            force: request.rebuild,
            no_cache: request.full_rebuild,
            pull_always: false,
            extra_tags: vec![tags.l1_alias.clone()],
            squash,
        };
        let l1 = self.layer(job, how, on_event).await?;
        // The alias already on the reused L1 needs no second look.
        let alias_current = l1.reused
            && known.l1.as_ref().is_some_and(|info| {
                info.tags
                    .iter()
                    .any(|t| t.trim_start_matches("localhost/") == tags.l1_alias)
            });
        if !alias_current {
            self.point_alias(&tags.l1_alias, &tags.l1, &l1.id).await?;
        }
        Ok(l1)
    }

    /// The sidecar image on L0, when the request asks for one.
    async fn ensure_sidecar(
        &self,
        request: &BuildRequest,
        inputs: &Inputs,
        l0: &BuiltImage,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<Option<BuiltImage>, ImageBuildError> {
        let Some(entry) = &request.sidecar else {
            return Ok(None);
        };
        let tags = &inputs.tags;
        let (_, spec) = self.roster.sidecar(entry)?;
        let tool = &spec.tool_name;
        let tag = tags.sidecar_for(entry);
        let files = ContextFiles::new(render_sidecar(
            inputs.family,
            tool,
            spec.install.as_deref(),
        )?);
        let squash = self.layers_beyond_limit(&tags.l0, &files).await?;
        let mut job_inputs = layer_inputs(format!("l0={}", l0.content_hash), squash);
        job_inputs.push(format!("tool={tool}"));
        let job = LayerJob {
            layer: Layer::Sidecar,
            existing: self.runtime.image_inspect(&tag).await?,
            tag,
            files: &files,
            inputs: job_inputs,
        };
        let how = LayerBuild {
            family: inputs.family,
            base: local(&tags.l0),
            cache_bust: Some(("TOOL_CACHE_BUST", cache_bust(request.rebuild))),
            force: request.rebuild,
            no_cache: request.full_rebuild,
            pull_always: false,
            extra_tags: Vec::new(),
            squash,
        };
        self.layer(job, how, on_event).await.map(Some)
    }

    /// The images of `request` if a trusted recent check (see [`Self::with_stamps`]) covers
    /// its current inputs; no podman call. For preflights that want to know without asking.
    pub fn recent_check(&self, request: &BuildRequest) -> Option<BuiltImages> {
        let tags = Self::tags(request);
        let family = detect_family(&request.base_image, request.family).ok()?;
        let inputs = self.inputs(request, tags, family).ok()?;
        self.trusted_recent_check(request, &inputs, &mut |_| {})
    }

    /// The L1 build context of `request`.
    fn l1_files(
        &self,
        request: &BuildRequest,
        family: PackageFamily,
    ) -> Result<ContextFiles, ImageBuildError> {
        let order = self.roster.install_order(&request.selection);
        let mut agents = Vec::with_capacity(order.len());
        for name in &order {
            let agent = self.roster.entry(name)?;
            let install = agent.install.clone().unwrap_or_default();
            let render = |which: &str,
                          snippet: &Option<String>|
             -> Result<Option<String>, ImageBuildError> {
                snippet
                    .as_deref()
                    .map(|s| render_snippet(name, which, s, family))
                    .transpose()
            };
            agents.push(SnippetAgent {
                name: name.clone(),
                run_as_root: render("run_as_root", &install.run_as_root)?,
                run_as_dev: render("run_as_dev", &install.run_as_dev)?,
                acp_server: agent
                    .acp
                    .as_ref()
                    .and_then(|acp| acp.command.first())
                    .map(|word| terok_roster::shell_quote(word)),
                label: agent.label.clone(),
            });
        }
        let dockerfile = render_l1(&RenderInput {
            family,
            agents,
            user_snippet: request.user_snippet.clone(),
        })?;
        let (agent_help, tool_help) = self.roster.help_lines(&order);
        let mut l1_files = ContextFiles::new(dockerfile);
        l1_files.add_scripts(None);
        l1_files.add("help.d/agents.txt", help_text(&agent_help), false);
        l1_files.add("help.d/dev-tools.txt", help_text(&tool_help), false);
        Ok(l1_files)
    }

    fn stamp_path(&self, l1_tag: &str) -> Option<PathBuf> {
        Some(stamp_file(&self.stamps.as_ref()?.0, l1_tag))
    }

    fn write_stamp(&self, stamp: &Stamp) {
        let Some(path) = self.stamp_path(&stamp.l1_tag) else {
            return;
        };
        if let Some(parent) = path.parent()
            && terok_core::secure_fs::ensure_private_dir(parent).is_err()
        {
            return;
        }
        if let Ok(text) = serde_json::to_vec(stamp) {
            // A stamp is an optimisation: failing to write one costs a podman call next time.
            let _ = terok_core::secure_fs::write_atomic(&path, &text, 0o600);
        }
    }

    /// The images of a check made less than the trusted age ago whose inputs are unchanged
    /// (same content hashes, computed without podman): a launch right after another skips
    /// asking podman. Never used for rebuilds or sidecars.
    fn trusted_recent_check(
        &self,
        request: &BuildRequest,
        inputs: &Inputs,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Option<BuiltImages> {
        let Inputs {
            tags,
            family,
            l0_files,
            l1_files,
        } = inputs;
        let family = *family;
        let max_age = self.stamps.as_ref()?.1?;
        if request.rebuild || request.full_rebuild || request.sidecar.is_some() {
            return None;
        }
        let path = self.stamp_path(&tags.l1)?;
        let bytes = terok_core::secure_fs::read_nofollow(&path).ok()?;
        let stamp: Stamp = serde_json::from_slice(&bytes).ok()?;
        let age = terok_core::time::unix_now().saturating_sub(stamp.written_unix);
        if age < 0 || age > i64::try_from(max_age.as_secs()).ok()? {
            return None;
        }
        if stamp.base_image != request.base_image
            || stamp.family != family.as_str()
            || stamp.l0_tag != tags.l0
            || stamp.l1_tag != tags.l1
            || stamp.l1_alias != tags.l1_alias
        {
            return None;
        }
        let l0_hash = l0_files.hash(&[&format!("base={}@{}", request.base_image, stamp.base_id)]);
        let l1_hash = l1_files.hash(&[&format!("l0={l0_hash}")]);
        if l0_hash != stamp.l0_hash || l1_hash != stamp.l1_hash {
            return None;
        }
        for (layer, tag, id) in [
            (Layer::L0, &stamp.l0_tag, &stamp.l0_id),
            (Layer::L1, &stamp.l1_tag, &stamp.l1_id),
        ] {
            on_event(BuildEvent::LayerStarted {
                layer,
                tag: tag.clone(),
            });
            on_event(BuildEvent::LayerFinished {
                layer,
                tag: tag.clone(),
                image_id: id.clone(),
                reused: true,
                duration: Duration::ZERO,
            });
        }
        Some(BuiltImages {
            family,
            l0: BuiltImage {
                tag: stamp.l0_tag,
                id: stamp.l0_id,
                reused: true,
                content_hash: stamp.l0_hash,
            },
            l1: BuiltImage {
                tag: stamp.l1_tag,
                id: stamp.l1_id,
                reused: true,
                content_hash: stamp.l1_hash,
            },
            l1_alias: stamp.l1_alias,
            sidecar: None,
        })
    }

    /// Forgets the recorded check of `request` (after podman said an image it names is gone),
    /// so the next `ensure` asks podman.
    pub fn forget_stamp(&self, request: &BuildRequest) {
        if let Some(path) = self.stamp_path(&Self::tags(request).l1) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The family from the request or the base image's name; failing that, the family an
    /// existing L0 was built with (so a base built once with `--family` stays usable).
    async fn family(
        &self,
        request: &BuildRequest,
        tags: &TagSet,
    ) -> Result<PackageFamily, ImageBuildError> {
        match detect_family(&request.base_image, request.family) {
            Ok(family) => Ok(family),
            Err(err) => {
                // If podman cannot answer either, the missing family is still the thing to fix.
                let recorded = self
                    .runtime
                    .image_inspect(&tags.l0)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|i| i.labels.get(LABEL_FAMILY).cloned());
                match recorded.as_deref() {
                    Some("deb") => Ok(PackageFamily::Deb),
                    Some("rpm") => Ok(PackageFamily::Rpm),
                    _ => Err(err),
                }
            }
        }
    }

    async fn lock(&self, l0_tag: &str) -> Result<Option<std::fs::File>, ImageBuildError> {
        let Some(dir) = &self.lock_dir else {
            return Ok(None);
        };
        let path = dir.join(format!("build-{}.lock", crate::tags::base_fragment(l0_tag)));
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            terok_core::secure_fs::lock_exclusive(&path)
                .map(Some)
                .map_err(|e| ImageBuildError::Context(format!("{e} (in {})", dir.display())))
        })
        .await
        .map_err(|e| ImageBuildError::Context(format!("lock task failed: {e}")))?
    }

    /// How many filesystem layers an image of `files` on `below` would have, when that is more
    /// than a task container can start from; `None` when it can (or `below` does not say).
    async fn layers_beyond_limit(
        &self,
        below: &str,
        files: &ContextFiles,
    ) -> Result<Option<usize>, ImageBuildError> {
        let below = self
            .runtime
            .image_inspect(below)
            .await?
            .and_then(|img| img.layers);
        Ok(below
            .map(|below| below + files.layer_steps())
            .filter(|layers| *layers > terok_podman::MAX_MAPPED_LAYERS))
    }

    /// One layer: reused when an image with the same content hash exists, else built.
    async fn layer(
        &self,
        job: LayerJob<'_>,
        how: LayerBuild,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<BuiltImage, ImageBuildError> {
        let LayerJob {
            layer,
            tag,
            files,
            inputs,
            existing,
        } = job;
        let tag = tag.as_str();
        let started = Instant::now();
        on_event(BuildEvent::LayerStarted {
            layer,
            tag: tag.to_owned(),
        });
        let extra: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let hash = files.hash(&extra);
        if !how.force
            && !how.no_cache
            && let Some(existing) = existing.filter(|img| {
                img.labels.get(LABEL_CONTENT_HASH).map(String::as_str) == Some(hash.as_str())
            })
        {
            on_event(BuildEvent::LayerFinished {
                layer,
                tag: tag.to_owned(),
                image_id: existing.id.clone(),
                reused: true,
                duration: started.elapsed(),
            });
            return Ok(BuiltImage {
                tag: tag.to_owned(),
                id: existing.id,
                reused: true,
                content_hash: hash,
            });
        }
        let staged = files.stage()?;
        let mut build_args = vec![("BASE_IMAGE".to_owned(), how.base.clone())];
        if let Some((name, value)) = &how.cache_bust {
            build_args.push(((*name).to_owned(), value.clone()));
        }
        let mut tags = vec![tag.to_owned()];
        tags.extend(how.extra_tags.iter().cloned());
        let spec = BuildSpec {
            dockerfile: staged.dockerfile(),
            context: staged.dir().to_path_buf(),
            tags,
            build_args,
            labels: vec![
                (LABEL_LAYER.to_owned(), layer.label().to_owned()),
                (LABEL_CONTENT_HASH.to_owned(), hash.clone()),
                (LABEL_FAMILY.to_owned(), how.family.as_str().to_owned()),
            ],
            no_cache: how.no_cache,
            pull_always: how.pull_always,
            squash: how.squash.is_some(),
        };
        if let Some(layers) = how.squash {
            on_event(BuildEvent::Squashed {
                layer,
                layers,
                limit: terok_podman::MAX_MAPPED_LAYERS,
            });
        }
        let mut watch = InstallWatch::default();
        let mut on_line = |line: &str| {
            watch.see(line);
            if let Some(step) = parse_step(line) {
                on_event(BuildEvent::Step {
                    layer,
                    current: step.0,
                    total: step.1,
                    text: step.2,
                });
            }
            on_event(BuildEvent::Output {
                layer,
                line: line.to_owned(),
            });
        };
        let built = self.runtime.build(&spec, &mut on_line).await;
        let output = built.map_err(|err| match watch.failed_install() {
            Some(failed) => ImageBuildError::AgentInstall {
                agent: failed.agent,
                image: tag.to_owned(),
                layer,
                step: failed.step,
                cause: failed.cause,
                tail: failed.tail,
            },
            None => ImageBuildError::Podman(err),
        })?;
        on_event(BuildEvent::LayerFinished {
            layer,
            tag: tag.to_owned(),
            image_id: output.image_id.clone(),
            reused: false,
            duration: started.elapsed(),
        });
        Ok(BuiltImage {
            tag: tag.to_owned(),
            id: output.image_id,
            reused: false,
            content_hash: hash,
        })
    }

    async fn point_alias(&self, alias: &str, tag: &str, id: &str) -> Result<(), ImageBuildError> {
        let current = self.runtime.image_inspect(alias).await?;
        if current.is_none_or(|img| !same_id(&img.id, id)) {
            self.runtime.image_tag(tag, alias).await?;
        }
        Ok(())
    }
}

/// Everything that feeds the layers of one request.
struct Inputs {
    tags: TagSet,
    family: PackageFamily,
    l0_files: ContextFiles,
    l1_files: ContextFiles,
}

/// The images of a request as podman knows them before the build.
struct KnownImages {
    /// The base image's id (empty when it does not exist locally).
    base_id: String,
    l0: Option<ImageInfo>,
    l1: Option<ImageInfo>,
}

/// One layer to make sure of.
struct LayerJob<'a> {
    layer: Layer,
    tag: String,
    files: &'a ContextFiles,
    /// Inputs besides the files (the layer below, the base image's id).
    inputs: Vec<String>,
    /// What podman has under the tag now.
    existing: Option<ImageInfo>,
}

/// How a layer is built when it must be.
struct LayerBuild {
    family: PackageFamily,
    base: String,
    cache_bust: Option<(&'static str, String)>,
    force: bool,
    no_cache: bool,
    pull_always: bool,
    extra_tags: Vec<String>,
    /// Squash the build's steps into one layer: step by step it would have this many.
    squash: Option<usize>,
}

/// A layer's inputs besides its files: the layer below, and whether it is squashed (so an
/// image built step by step is not taken for one that must be squashed).
fn layer_inputs(below: String, squash: Option<usize>) -> Vec<String> {
    let mut inputs = vec![below];
    if squash.is_some() {
        inputs.push("squashed".to_owned());
    }
    inputs
}

fn same_id(a: &str, b: &str) -> bool {
    let a = a.trim_start_matches("sha256:");
    let b = b.trim_start_matches("sha256:");
    !a.is_empty() && (a.starts_with(b) || b.starts_with(a))
}

fn cache_bust(rebuild: bool) -> String {
    if rebuild {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().to_string())
            .unwrap_or_else(|_| "1".to_owned())
    } else {
        "0".to_owned()
    }
}

fn help_text(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for line in lines {
        out.push_str(&decode_help_escapes(line));
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse() {
        assert_eq!(
            parse_step("STEP 3/15: RUN apt-get update"),
            Some((3, 15, "RUN apt-get update".into()))
        );
        assert_eq!(parse_step("--> abc"), None);
    }

    #[test]
    fn ids_compare_by_prefix() {
        assert!(same_id("sha256:abcdef", "abc"));
        assert!(!same_id("abc", "abd"));
        assert!(!same_id("", ""));
    }
}

//! The session's images: a [`BuildRequest`] from what the caller chose and config.yml's
//! `image:` section, building what is missing or stale (with build locks and recorded checks
//! under the state root), their presence as data, and their removal.

use terok_core::config::PackageFamily;
use terok_image_build::{
    BuildEvent, BuildRequest, BuiltImages, CaSource, ImageBuilder, LABEL_CONTENT_HASH, LABEL_LAYER,
    Unsuited,
};
use terok_podman::ContainerRuntime;
use terok_roster::{Roster, Selection};

use crate::error::ExecutorError;
use crate::session::Executor;

/// How long a launch trusts a recorded image check whose inputs are unchanged.
pub const IMAGE_CHECK_TRUST: std::time::Duration = std::time::Duration::from_secs(300);

/// Which images to build, as a caller chooses them; what is left `None` comes from config.yml
/// (`image.base_image`, `image.family`, `image.agents`), then the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageChoice {
    /// The base image of L0.
    pub base: Option<String>,
    /// Its package family, when its name does not say.
    pub family: Option<PackageFamily>,
    /// The agent selection (`all`, `claude,codex`, `all,-vibe`).
    pub agents: Option<String>,
    /// Rebuild the agent layer even when it is current.
    pub rebuild: bool,
    /// Rebuild everything without podman's cache.
    pub full_rebuild: bool,
    /// Also build a sidecar tool image.
    pub sidecar: Option<SidecarChoice>,
    /// Entries added to the selection whatever it is (a web task adds `toad`).
    pub also: Vec<String>,
}

/// Which sidecar tool image to build.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SidecarChoice {
    /// The roster's only sidecar tool.
    TheOnlyOne,
    /// This tool.
    Named(String),
}

/// One image a launch needs and whether it exists (built by terok, with its content hash).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageState {
    /// `L0` or `L1`.
    pub layer: &'static str,
    /// Tag.
    pub tag: String,
    /// Whether it exists.
    pub present: bool,
}

/// What [`Executor::remove_images`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovedImages {
    /// Each removed image, by its references.
    pub removed: Vec<Vec<String>>,
    /// Images that stayed (used by a container, …), with podman's reason.
    pub kept: Vec<(String, String)>,
}

/// Resolves `text` for `base`: what `all` brings in that cannot work on the base is left out
/// (and returned); an entry named explicitly stays, so that the build refuses it with the
/// reason.
fn fit_selection(
    roster: &Roster,
    base: &str,
    text: &str,
) -> Result<(Vec<String>, Vec<Unsuited>), ExecutorError> {
    let selection = roster.resolve_selection(text)?;
    let named = Selection::parse(text).include;
    let left_out: Vec<Unsuited> = terok_image_build::unsuited(roster, base, &selection)
        .into_iter()
        .filter(|u| !named.contains(&u.agent))
        .collect();
    if left_out.is_empty() {
        return Ok((selection, left_out));
    }
    // Excluding them as `-name` would: an entry that depends on one is an error, not a
    // half-installed image.
    let exclusions: Vec<String> = left_out.iter().map(|u| format!("-{}", u.agent)).collect();
    let narrowed = roster.resolve_selection(&format!("{text},{}", exclusions.join(",")))?;
    Ok((narrowed, left_out))
}

impl<R: ContainerRuntime> Executor<R> {
    /// The build request for `choice`: the choice first, then config.yml, then the defaults.
    pub fn build_request(&self, choice: &ImageChoice) -> Result<BuildRequest, ExecutorError> {
        let config = &self.config.config.image;
        let roster = self.roster()?;
        let mut selection_text = choice
            .agents
            .clone()
            .or_else(|| config.agents.clone())
            .unwrap_or_else(|| "all".to_owned());
        for entry in &choice.also {
            selection_text = format!("{selection_text},{entry}");
        }
        let base_image = choice
            .base
            .clone()
            .unwrap_or_else(|| config.base_image.clone());
        let (selection, left_out) = fit_selection(roster, &base_image, &selection_text)?;
        Ok(BuildRequest {
            base_image,
            family: choice.family.or(config.family),
            selection,
            rebuild: choice.rebuild,
            full_rebuild: choice.full_rebuild,
            sidecar: self.sidecar_tool(choice.sidecar.as_ref())?,
            ca: self.ca_source(),
            user_snippet: self.user_snippet()?,
            left_out,
        })
    }

    /// The tool whose sidecar image `choice` asks for.
    fn sidecar_tool(
        &self,
        choice: Option<&SidecarChoice>,
    ) -> Result<Option<String>, ExecutorError> {
        let roster = self.roster()?;
        match choice {
            None => Ok(None),
            Some(SidecarChoice::Named(tool)) => Ok(Some(roster.sidecar(tool)?.0.name.clone())),
            Some(SidecarChoice::TheOnlyOne) => {
                let tools: Vec<String> = roster.sidecars().map(|(a, _)| a.name.clone()).collect();
                match tools.as_slice() {
                    [one] => Ok(Some(one.clone())),
                    [] => Err(ExecutorError::NoSidecarTool),
                    _ => Err(ExecutorError::AmbiguousSidecar { tools }),
                }
            }
        }
    }

    /// The CA certificates L0 installs (`image.ca_certificates`).
    fn ca_source(&self) -> CaSource {
        match &self.config.config.image.ca_certificates {
            None => CaSource::default(),
            Some(paths) if paths.is_empty() => CaSource::None,
            Some(paths) => CaSource::Paths(
                paths
                    .iter()
                    .map(|p| terok_core::paths::expand_tilde(p, &self.env))
                    .collect(),
            ),
        }
    }

    /// The Dockerfile fragment appended to L1: the inline snippet, then the file's.
    fn user_snippet(&self) -> Result<Option<String>, ExecutorError> {
        let config = &self.config.config.image;
        let mut snippet = config.user_snippet_inline.clone().unwrap_or_default();
        if let Some(file) = &config.user_snippet_file {
            let path = terok_core::paths::expand_tilde(file, &self.env);
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ExecutorError::UserSnippetFile { path, source })?;
            if !snippet.is_empty() {
                snippet.push('\n');
            }
            snippet.push_str(&text);
        }
        Ok(Some(snippet).filter(|s| !s.trim().is_empty()))
    }

    /// An image builder with the session's build locks and recorded checks; `trust` is how
    /// long a recorded check answers without podman (launches), `None` to always ask.
    pub(crate) fn image_builder(
        &self,
        trust: Option<std::time::Duration>,
    ) -> Result<ImageBuilder<'_, R>, ExecutorError> {
        Ok(ImageBuilder::new(&*self.runtime, self.roster()?)
            .with_lock_dir(self.paths.image_locks_dir())
            .with_stamps(self.image_stamps_dir(), trust))
    }

    /// Where the recorded image checks of the session's engine are: a remote engine's images
    /// are not this host's.
    pub(crate) fn image_stamps_dir(&self) -> std::path::PathBuf {
        let dir = self.paths.image_stamps_dir();
        match self.runtime.remote_engine() {
            None => dir,
            Some(engine) => {
                let name: String = engine
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                dir.join(format!("engine-{name}"))
            }
        }
    }

    /// Builds the images of `request` that are missing or stale; `on_event` gets progress.
    pub async fn ensure_images(
        &self,
        request: &BuildRequest,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<BuiltImages, ExecutorError> {
        Ok(self.image_builder(None)?.ensure(request, on_event).await?)
    }

    /// Whether podman answers; the error says why not.
    pub async fn podman_status(&self) -> Result<(), terok_podman::PodmanError> {
        self.runtime
            .images_with_label(LABEL_LAYER)
            .await
            .map(|_| ())
    }

    /// The L0 and L1 images of `request` and whether each exists (built by terok). One podman
    /// call, which also asks about the base image, so that a session that remembers image
    /// checks answers the build check that follows without asking again.
    pub async fn image_states(
        &self,
        request: &BuildRequest,
    ) -> Result<Vec<ImageState>, ExecutorError> {
        let tags = ImageBuilder::<R>::tags(request);
        let mut wanted = vec![("L0", tags.l0.clone()), ("L1", tags.l1.clone())];
        if let Some(tool) = &request.sidecar {
            wanted.push(("L1 (sidecar)", tags.sidecar_for(tool)));
        }
        let found = self
            .runtime
            .image_inspect_many(
                &wanted
                    .iter()
                    .map(|(_, tag)| tag.clone())
                    .collect::<Vec<_>>(),
            )
            .await?;
        Ok(wanted
            .into_iter()
            .zip(found)
            .map(|((layer, tag), info)| ImageState {
                layer,
                tag,
                present: info.is_some_and(|img| img.labels.contains_key(LABEL_CONTENT_HASH)),
            })
            .collect())
    }

    /// The images a tool run of `request` (its `sidecar` set) would have to build: L0 and
    /// the tool's sidecar image, never the agent layer.
    pub async fn missing_tool_images(
        &self,
        request: &BuildRequest,
    ) -> Result<Vec<ImageState>, ExecutorError> {
        let mut states = self.image_states(request).await?;
        states.retain(|s| !s.present && s.layer != "L1");
        Ok(states)
    }

    /// The images of `request` a launch would have to build. A check recorded in the last
    /// [`IMAGE_CHECK_TRUST`] (by a build or a launch) whose inputs are unchanged answers
    /// without podman.
    pub async fn missing_images(
        &self,
        request: &BuildRequest,
    ) -> Result<Vec<ImageState>, ExecutorError> {
        let recent = self
            .image_builder(Some(IMAGE_CHECK_TRUST))?
            .recent_check(request)
            .is_some();
        if recent {
            return Ok(Vec::new());
        }
        let mut states = self.image_states(request).await?;
        states.retain(|s| !s.present);
        Ok(states)
    }

    /// Removes every image terok built (found by label) and forgets the recorded checks.
    pub async fn remove_images(&self) -> Result<RemovedImages, ExecutorError> {
        let images = self.runtime.images_with_label(LABEL_LAYER).await?;
        // Removing every tag removes the image; by id podman refuses multi-tagged images.
        let refs = images
            .into_iter()
            .map(|image| {
                if image.tags.is_empty() {
                    vec![image.id]
                } else {
                    image.tags
                }
            })
            .collect();
        self.remove_these(refs).await
    }

    /// Removes the images terok built on `base` only: its L0, its L1 images (by the agents
    /// each one's label lists), the L1 alias and the sidecars of the roster's tools — each
    /// named exactly as a build on `base` names it, so a base whose name begins another's
    /// (`debian` and `debian:sid`) keeps the other's images.
    pub async fn remove_images_of(&self, base: &str) -> Result<RemovedImages, ExecutorError> {
        let tools: Vec<String> = self
            .roster()?
            .sidecars()
            .map(|(agent, _)| agent.name.clone())
            .collect();
        // Only the tags of `base`: an image that another base's build also tagged (the same
        // content) keeps that tag.
        let refs = self
            .runtime
            .images_with_label(LABEL_LAYER)
            .await?
            .iter()
            .map(|image| tags_built_on(image, base, &tools))
            .filter(|tags| !tags.is_empty())
            .collect();
        self.remove_these(refs).await
    }

    /// Removes each group of references (the tags of one image) and forgets the recorded
    /// checks.
    async fn remove_these(&self, images: Vec<Vec<String>>) -> Result<RemovedImages, ExecutorError> {
        let mut report = RemovedImages::default();
        for refs in images {
            match self.runtime.image_remove(&refs, false).await {
                Ok(()) => report.removed.push(refs),
                Err(err) => report
                    .kept
                    .push((refs.first().cloned().unwrap_or_default(), err.to_string())),
            }
        }
        // The recorded checks describe images that are gone now.
        match std::fs::remove_dir_all(self.paths.image_stamps_dir()) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(ExecutorError::io("cannot forget the recorded image checks")(err));
            }
            _ => {}
        }
        Ok(report)
    }
}

/// The tags of `image` a build on `base` gave it: exactly the L0 of `base`, its L1 alias, the
/// L1 of the agents the image's label lists, or the sidecar of one of `tools`.
fn tags_built_on(image: &terok_podman::ImageInfo, base: &str, tools: &[String]) -> Vec<String> {
    let agents: Vec<String> = image
        .labels
        .get(terok_image_build::LABEL_AGENTS)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let tags = terok_image_build::TagSet::new(base, &agents);
    let mut names = vec![tags.l0.clone(), tags.l1_alias.clone()];
    if !agents.is_empty() {
        names.push(tags.l1.clone());
    }
    names.extend(tools.iter().map(|tool| tags.sidecar_for(tool)));
    image
        .tags
        .iter()
        .filter(|tag| {
            let tag = tag.strip_prefix("localhost/").unwrap_or(tag);
            names.iter().any(|name| name == tag)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::tags_built_on;
    use terok_podman::ImageInfo;

    fn image(tag: &str, agents: Option<&str>) -> ImageInfo {
        ImageInfo {
            id: tag.to_owned(),
            tags: vec![format!("localhost/{tag}")],
            labels: agents
                .map(|a| (terok_image_build::LABEL_AGENTS.to_owned(), a.to_owned()))
                .into_iter()
                .collect(),
            layers: None,
            size: None,
        }
    }

    #[test]
    fn only_the_images_of_that_base_are_its_own() {
        let tools = ["coderabbit".to_owned()];
        let on = |img: &ImageInfo| !tags_built_on(img, "debian", &tools).is_empty();
        assert!(on(&image("terok-l0:debian", None)));
        assert!(on(&image("terok-l1-cli:debian", Some("claude,codex"))));
        assert!(on(&image(
            "terok-l1-cli:debian-claude-codex",
            Some("claude,codex")
        )));
        assert!(on(&image("terok-l1-sidecar:debian-coderabbit", None)));
        // debian:sid's names begin with debian's: they are not debian's.
        assert!(!on(&image("terok-l0:debian-sid", None)));
        assert!(!on(&image(
            "terok-l1-cli:debian-sid-claude",
            Some("claude")
        )));
        assert!(!on(&image("terok-l1-cli:debian-sid", Some("claude"))));
        assert!(!on(&image("terok-l1-sidecar:debian-sid-coderabbit", None)));
        // One image tagged by both bases: only debian's tag is its.
        let mut both = image("terok-l0:debian", None);
        both.tags.push("localhost/terok-l0:debian-sid".to_owned());
        assert_eq!(
            tags_built_on(&both, "debian", &tools),
            ["localhost/terok-l0:debian"]
        );
    }
}

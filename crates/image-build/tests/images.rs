//! Family detection, tag names, rendered Dockerfiles, and the reuse / rebuild decisions of the
//! builder (against the recording fake runtime; the real-podman build is in podman_build.rs).

// Test helpers may panic: a panic is how a test reports failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use insta::assert_snapshot;
use terok_core::config::PackageFamily;
use terok_image_build::{
    BuildEvent, BuildRequest, CaSource, ImageBuilder, RenderInput, SnippetAgent, TagSet,
    detect_family, render_l0, render_l1, render_sidecar, render_snippet,
};
use terok_podman::{ContainerRuntime, FakeCall, FakeRuntime};
use terok_roster::{Roster, RosterLoader};

#[test]
fn family_detection_covers_the_python_cases_and_local_names() {
    let deb = Some(PackageFamily::Deb);
    let rpm = Some(PackageFamily::Rpm);
    for (base, want) in [
        ("ubuntu:24.04", deb),
        ("docker.io/library/ubuntu:24.04", deb),
        ("debian", deb),
        ("localhost/debian:bookworm", deb),
        ("fedora:44", rpm),
        ("registry.fedoraproject.org/fedora:44", rpm),
        ("quay.io/podman/stable", rpm),
        ("nvidia/cuda:12.4.1-devel-ubuntu22.04", deb),
        ("nvcr.io/nvidia/cuda:12.4.1-devel-ubi9", rpm),
        ("nvcr.io/nvidia/pytorch:24.05-py3", deb),
        ("localhost:5000/ubuntu:24.04", deb),
        ("ubuntu@sha256:0123456789abcdef", deb),
        ("my.registry:5000/mirror/fedora:44", rpm),
    ] {
        assert_eq!(detect_family(base, None).ok(), want, "{base}");
    }
    assert_eq!(
        detect_family("alpine:3", Some(PackageFamily::Deb)).unwrap(),
        PackageFamily::Deb
    );
    let err = detect_family("alpine:3", None).unwrap_err();
    let shown = format!("{:?}", miette::Report::new(err));
    assert!(
        shown.contains("cannot infer the package family of base image `alpine:3`"),
        "{shown}"
    );
    // The library states the condition; which flag or key fixes it is the caller's to say.
    assert!(!shown.contains("--family"), "{shown}");
}

#[test]
fn tags_follow_the_python_naming() {
    let t = TagSet::new("ubuntu:24.04", &["codex".into(), "claude".into()]);
    assert_eq!(t.l0, "terok-l0:ubuntu-24.04");
    assert_eq!(t.l1, "terok-l1-cli:ubuntu-24.04-claude-codex");
    assert_eq!(t.l1_alias, "terok-l1-cli:ubuntu-24.04");
    assert_eq!(t.sidecar, "terok-l1-sidecar:ubuntu-24.04");
    assert_eq!(TagSet::new("", &[]).l1, "terok-l1-cli:ubuntu-24.04-empty");
    assert_eq!(
        TagSet::new("localhost:5000/ubuntu:24.04", &[]).l0,
        "terok-l0:localhost-5000-ubuntu-24.04"
    );
    assert_eq!(
        TagSet::new("ubuntu@sha256:0123456789abcdef", &[]).l0,
        "terok-l0:ubuntu-sha256-0123456789abcdef"
    );
    // The default `all` selection, as in the Python terok-executor's example.
    let all: Vec<String> =
        "blablador caddy claude codex copilot gh glab kisski opencode openrouter sonar toad vibe"
            .split(' ')
            .map(str::to_owned)
            .collect();
    assert_eq!(
        TagSet::new("ubuntu:24.04", &all).l1,
        "terok-l1-cli:ubuntu-24.04-blablador-caddy-claude-codex-copilot-gh-glab-kisski-opencode-openrouter-sonar-toad-vibe"
    );
    // Very long base names are cut and suffixed with a hash; long selections become a hash.
    let long = format!("registry.example.com/{}/image:1", "x".repeat(150));
    let t = TagSet::new(&long, &["claude".into()]);
    let frag = t.l0.strip_prefix("terok-l0:").unwrap();
    assert_eq!(frag.len(), 120);
    assert!(
        frag[111..].starts_with('-') && frag[112..].chars().all(|c| c.is_ascii_hexdigit()),
        "{frag}"
    );
    let many: Vec<String> = (0..40).map(|i| format!("agent-number-{i}")).collect();
    let tag = TagSet::new("ubuntu:24.04", &many).l1;
    let suffix = tag.strip_prefix("terok-l1-cli:ubuntu-24.04-").unwrap();
    assert_eq!(suffix.len(), 12, "{tag}");
}

fn snippet_input(family: PackageFamily) -> RenderInput {
    let roster = RosterLoader::bundled().load().unwrap();
    snippet_input_for(&roster, &["claude".into(), "gh".into()], family)
}

fn snippet_input_for(roster: &Roster, names: &[String], family: PackageFamily) -> RenderInput {
    let agents = names
        .iter()
        .map(|name| {
            let install = roster.entry(name).unwrap().install.clone().unwrap();
            let render = |which: &str, s: &Option<String>| {
                s.as_ref()
                    .map(|s| render_snippet(name, which, s, family).unwrap())
            };
            SnippetAgent {
                name: name.clone(),
                run_as_root: render("run_as_root", &install.run_as_root),
                run_as_dev: render("run_as_dev", &install.run_as_dev),
                acp_server: roster
                    .entry(name)
                    .unwrap()
                    .acp
                    .as_ref()
                    .map(|acp| acp.command[0].clone()),
                label: roster.entry(name).unwrap().label.clone(),
            }
        })
        .collect();
    RenderInput {
        family,
        agents,
        user_snippet: Some("RUN echo from-config".into()),
    }
}

#[test]
fn dockerfile_l0_deb() {
    assert_snapshot!("l0_deb", render_l0(PackageFamily::Deb).unwrap());
}

#[test]
fn dockerfile_l0_rpm() {
    assert_snapshot!("l0_rpm", render_l0(PackageFamily::Rpm).unwrap());
}

#[test]
fn dockerfile_l1_deb() {
    assert_snapshot!(
        "l1_deb",
        render_l1(&snippet_input(PackageFamily::Deb)).unwrap()
    );
}

#[test]
fn dockerfile_l1_rpm() {
    assert_snapshot!(
        "l1_rpm",
        render_l1(&snippet_input(PackageFamily::Rpm)).unwrap()
    );
}

/// The bundled CodeRabbit entry's `sidecar.install`.
fn coderabbit_install() -> Option<String> {
    let roster = RosterLoader::bundled().load().unwrap();
    roster.sidecar("coderabbit").unwrap().1.install.clone()
}

#[test]
fn dockerfile_sidecar_deb_and_rpm() {
    assert_snapshot!(
        "sidecar_deb",
        render_sidecar(
            PackageFamily::Deb,
            "coderabbit",
            coderabbit_install().as_deref()
        )
        .unwrap()
    );
    assert_snapshot!(
        "sidecar_rpm",
        render_sidecar(
            PackageFamily::Rpm,
            "coderabbit",
            coderabbit_install().as_deref()
        )
        .unwrap()
    );
}

// ---- reuse and rebuild decisions (fake runtime) --------------------------------------------

fn request(selection: &[&str]) -> BuildRequest {
    let mut r = BuildRequest::new(
        "localhost/debian:bookworm",
        selection.iter().map(|s| (*s).to_owned()).collect(),
    );
    r.ca = CaSource::None;
    r
}

async fn ensure(
    fake: &FakeRuntime,
    roster: &Roster,
    req: &BuildRequest,
) -> (terok_image_build::BuiltImages, Vec<BuildEvent>) {
    let mut events = Vec::new();
    let built = ImageBuilder::new(fake, roster)
        .ensure(req, &mut |e| events.push(e))
        .await
        .unwrap();
    (built, events)
}

#[tokio::test]
async fn current_images_are_reused_without_building() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    let req = request(&["claude"]);
    let (first, _) = ensure(&fake, &roster, &req).await;
    assert_eq!(fake.build_count(), 2);
    assert!(!first.l0.reused && !first.l1.reused);
    let (second, events) = ensure(&fake, &roster, &req).await;
    assert_eq!(fake.build_count(), 2, "a second ensure must not build");
    assert!(second.l0.reused && second.l1.reused);
    assert_eq!(
        (second.l0.id.clone(), second.l1.id.clone()),
        (first.l0.id, first.l1.id)
    );
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, BuildEvent::Output { .. }))
    );
}

#[tokio::test]
async fn a_recent_check_spares_launches_the_podman_call_until_an_input_changes() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    let stamps = tempfile::tempdir().unwrap();
    let req = request(&["claude"]);
    let trusting = |fake| {
        ImageBuilder::new(fake, &roster)
            .with_stamps(stamps.path(), Some(std::time::Duration::from_secs(300)))
    };
    // A full check (it builds) records its outcome.
    let first = ImageBuilder::new(&fake, &roster)
        .with_stamps(stamps.path(), None)
        .ensure(&req, &mut |_| {})
        .await
        .unwrap();
    let calls = fake.calls().len();
    // A launch right after trusts it: same images, no podman call at all.
    let second = trusting(&fake).ensure(&req, &mut |_| {}).await.unwrap();
    assert_eq!(fake.calls().len(), calls, "{:?}", &fake.calls()[calls..]);
    assert!(second.l1.reused && second.l1.id == first.l1.id);
    // Changed inputs (a user snippet) are not covered by the record: podman is asked and L1
    // is rebuilt.
    let mut changed = req.clone();
    changed.user_snippet = Some("RUN true".into());
    let third = trusting(&fake).ensure(&changed, &mut |_| {}).await.unwrap();
    assert!(!third.l1.reused);
    assert!(fake.calls().len() > calls);
    // A forgotten record sends the next launch to podman too.
    let builder = trusting(&fake);
    builder.forget_stamp(&changed);
    let before = fake.calls().len();
    builder.ensure(&changed, &mut |_| {}).await.unwrap();
    assert!(fake.calls().len() > before);
}

#[tokio::test]
async fn a_changed_install_snippet_rebuilds_l1_only() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    let (first, _) = ensure(&fake, &roster, &request(&["claude"])).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("claude.yaml"),
        "install:\n  run_as_dev: |\n    RUN npm install -g @anthropic-ai/claude-code && echo changed\n",
    )
    .unwrap();
    let changed = RosterLoader::bundled()
        .with_override_dir(dir.path())
        .load()
        .unwrap();
    let (second, _) = ensure(&fake, &changed, &request(&["claude"])).await;
    assert!(second.l0.reused, "L0 does not depend on install snippets");
    assert!(!second.l1.reused);
    assert_ne!(second.l1.id, first.l1.id);
    assert_eq!(fake.build_count(), 3);
}

#[tokio::test]
async fn extra_ca_certificates_feed_l0() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let mut req = request(&["claude"]);
    req.ca = CaSource::Paths(vec![certs.path().to_path_buf()]);
    let (first, _) = ensure(&fake, &roster, &req).await;
    std::fs::write(
        certs.path().join("proxy.crt"),
        "-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();
    let (second, _) = ensure(&fake, &roster, &req).await;
    assert!(
        !second.l0.reused && !second.l1.reused,
        "new CA → new L0 → new L1"
    );
    assert_ne!(first.l0.content_hash, second.l0.content_hash);
}

#[tokio::test]
async fn rebuild_busts_l1_and_full_rebuild_skips_the_cache_everywhere() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    ensure(&fake, &roster, &request(&["claude"])).await;
    let mut req = request(&["claude"]);
    req.rebuild = true;
    let (rebuilt, _) = ensure(&fake, &roster, &req).await;
    assert!(rebuilt.l0.reused && !rebuilt.l1.reused);
    let builds: Vec<_> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Build(b) => Some(b),
            _ => None,
        })
        .collect();
    let last = builds.last().unwrap();
    let bust = last
        .build_args
        .iter()
        .find(|(k, _)| k == "AGENT_CACHE_BUST")
        .unwrap();
    assert_ne!(bust.1, "0");
    let mut req = request(&["claude"]);
    req.full_rebuild = true;
    let (full, _) = ensure(&fake, &roster, &req).await;
    assert!(!full.l0.reused && !full.l1.reused);
    let builds: Vec<_> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Build(b) => Some(b),
            _ => None,
        })
        .collect();
    let l0 = &builds[builds.len() - 2];
    assert!(l0.no_cache);
    assert!(!l0.pull_always, "a localhost/ base cannot be pulled");
}

#[tokio::test]
async fn l1_is_labelled_and_aliased_and_the_sidecar_builds_on_l0() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    let mut req = request(&["claude", "gh"]);
    req.sidecar = Some("coderabbit".into());
    let (built, _) = ensure(&fake, &roster, &req).await;
    assert_eq!(
        built.l1.tag,
        "terok-l1-cli:localhost-debian-bookworm-claude-gh"
    );
    assert_eq!(built.l1_alias, "terok-l1-cli:localhost-debian-bookworm");
    let sidecar = built.sidecar.unwrap();
    assert_eq!(
        sidecar.tag,
        "terok-l1-sidecar:localhost-debian-bookworm-coderabbit"
    );
    let builds: Vec<_> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Build(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(builds.len(), 3);
    assert!(builds[1].tags.contains(&built.l1_alias));
    assert!(builds[2].build_args.contains(&(
        "BASE_IMAGE".into(),
        "localhost/terok-l0:localhost-debian-bookworm".into()
    )));
    assert!(
        builds
            .iter()
            .all(|b| b.labels.iter().any(|(k, _)| k == "ai.terok.content-hash"))
    );
}

#[tokio::test]
async fn an_unknown_base_uses_the_family_its_l0_was_built_with() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    let mut req = BuildRequest::new("localhost/mydistro:1", vec!["claude".into()]);
    req.ca = CaSource::None;
    let err = ImageBuilder::new(&fake, &roster)
        .ensure(&req, &mut |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot infer the package family"));
    req.family = Some(PackageFamily::Rpm);
    ImageBuilder::new(&fake, &roster)
        .ensure(&req, &mut |_| {})
        .await
        .unwrap();
    req.family = None;
    let again = ImageBuilder::new(&fake, &roster)
        .ensure(&req, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(again.family, PackageFamily::Rpm);
    assert!(again.l0.reused && again.l1.reused);
}

#[tokio::test]
async fn a_failed_install_names_its_agent_and_why() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    ensure(&fake, &roster, &request(&["claude"])).await;
    // The L1 build with glab fails in glab's steps, as it does where gitlab.com is out of reach.
    fake.print_in_builds(&[
        "STEP 9/31: ARG TEROK_INSTALLING=glab",
        "STEP 10/31: RUN apt-get update  && (apt-get install -y --no-install-recommends glab || /tmp/terok-scripts/install-glab-release.sh deb)  && rm -rf /var/lib/apt/lists/*",
        "Reading package lists...",
        "E: Unable to locate package glab",
        "curl: (6) Could not resolve host: gitlab.com",
    ]);
    fake.fail_builds();
    let err = ImageBuilder::new(&fake, &roster)
        .ensure(&request(&["claude", "glab"]), &mut |_| {})
        .await
        .unwrap_err();
    assert_snapshot!(err.to_string(), @"
    installing `glab` into terok-l1-cli:localhost-debian-bookworm-claude-glab failed: gitlab.com cannot be reached from here
        STEP 10/31: RUN apt-get update  && (apt-get install -y --no-install-recommends glab || /tmp/terok-scripts/install-glab-release.sh deb)  && rm -rf /var/lib/apt/lists/*
        Reading package lists...
        E: Unable to locate package glab
        curl: (6) Could not resolve host: gitlab.com
    ");
    // A failure outside every agent's steps stays podman's.
    fake.print_in_builds(&[
        "STEP 9/31: ARG TEROK_INSTALLING=glab",
        "STEP 10/31: RUN true",
        "STEP 11/31: ARG TEROK_INSTALLING=",
        "STEP 12/31: RUN false",
    ]);
    let err = ImageBuilder::new(&fake, &roster)
        .ensure(&request(&["claude", "glab"]), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, terok_image_build::ImageBuildError::Podman(_)),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_sidecar_install_names_its_tool() {
    let dockerfile = render_sidecar(
        PackageFamily::Deb,
        "coderabbit",
        coderabbit_install().as_deref(),
    )
    .unwrap();
    let marks: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("ARG TEROK_INSTALLING="))
        .collect();
    assert_eq!(marks, ["coderabbit", ""]);
    // A download that fails must fail its step, not pipe nothing into sh.
    assert!(!dockerfile.contains("| sh"), "{dockerfile}");
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    // L0 and L1 build; then the sidecar's build fails in its install.
    ensure(&fake, &roster, &request(&["claude"])).await;
    fake.print_in_builds(&[
        "STEP 5/12: ARG TEROK_INSTALLING=coderabbit",
        "STEP 6/12: RUN curl -fsSL -o /tmp/coderabbit-install.sh https://cli.coderabbit.ai/install.sh",
        "curl: (6) Could not resolve host: cli.coderabbit.ai",
    ]);
    fake.fail_builds();
    let mut req = request(&["claude"]);
    req.sidecar = Some("coderabbit".into());
    let err = ImageBuilder::new(&fake, &roster)
        .ensure(&req, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "installing `coderabbit` into terok-l1-sidecar:localhost-debian-bookworm-coderabbit failed: \
             cli.coderabbit.ai cannot be reached from here"
        ),
        "{err}"
    );
}

#[test]
fn every_agents_steps_are_marked_in_the_l1_dockerfile() {
    let input = snippet_input(PackageFamily::Deb);
    let dockerfile = render_l1(&input).unwrap();
    let marks: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("ARG TEROK_INSTALLING="))
        .collect();
    let mut expected = Vec::new();
    for agent in &input.agents {
        if agent.run_as_root.is_some() {
            expected.push(agent.name.as_str());
        }
    }
    expected.push("");
    for agent in &input.agents {
        if agent.run_as_dev.is_some() {
            expected.push(agent.name.as_str());
        }
    }
    expected.push("");
    assert_eq!(marks, expected);
}

#[tokio::test]
async fn an_entry_the_base_is_too_old_for_is_refused_before_podman_runs() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    // Pi needs Node.js 20; bookworm's L1 installs 18.
    let err = ImageBuilder::new(&fake, &roster)
        .ensure(&request(&["claude", "pi"]), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot build for localhost/debian:bookworm: `pi` needs Node.js 20 or newer, it has 18"
    );
    assert!(fake.calls().is_empty(), "podman ran: {:?}", fake.calls());
    // On a base with a new enough Node.js, and on one this build does not know, it builds.
    for base in ["localhost/debian:trixie", "localhost/custom:1"] {
        let mut req = request(&["pi"]);
        req.base_image = base.to_owned();
        req.family = Some(PackageFamily::Deb);
        ensure(&fake, &roster, &req).await;
    }
    assert_eq!(fake.build_count(), 4);
}

#[tokio::test]
async fn an_entry_that_needs_a_newer_python_is_refused_on_a_base_known_to_lack_it() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    // Vibe needs Python 3.12, Toad 3.14 (it needs Caddy too); trixie installs 3.13.
    let mut req = request(&["vibe", "toad"]);
    req.base_image = "localhost/debian:trixie".to_owned();
    let err = ImageBuilder::new(&fake, &roster)
        .ensure(&req, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot build for localhost/debian:trixie: `toad` needs Python 3.14 or newer, it has 3.13"
    );
    assert!(fake.calls().is_empty(), "podman ran: {:?}", fake.calls());
    // Vibe alone fits trixie; Debian unstable's Python is not judged.
    for (base, agents) in [
        ("localhost/debian:trixie", "vibe"),
        ("localhost/debian:sid", "toad"),
    ] {
        let mut req = request(&[agents]);
        req.base_image = base.to_owned();
        req.family = Some(PackageFamily::Deb);
        ensure(&fake, &roster, &req).await;
    }
    assert_eq!(fake.build_count(), 4);
}

#[test]
fn every_install_step_keeps_package_caches_out_of_its_layer() {
    let roster = RosterLoader::bundled().load().unwrap();
    let names: Vec<String> = roster.installable().map(|(a, _)| a.name.clone()).collect();
    let dockerfile = render_l1(&snippet_input_for(&roster, &names, PackageFamily::Deb)).unwrap();
    let agents_part = dockerfile.split_once("ARG AGENT_CACHE_BUST=0").unwrap().1;
    // An entry's steps run from its `ARG TEROK_INSTALLING=<name>` to the next such line.
    let (mut in_entry, mut continued, mut runs) = (false, false, 0);
    for line in agents_part.lines() {
        if let Some(name) = line.strip_prefix("ARG TEROK_INSTALLING=") {
            in_entry = !name.is_empty();
        } else if in_entry && !continued && line.starts_with("RUN ") {
            runs += 1;
            assert!(
                line.starts_with("RUN --mount=type=tmpfs,target=/tmp/terok-build-cache "),
                "{line}"
            );
        }
        continued = line.trim_end().ends_with('\\');
    }
    assert!(runs > 10, "{runs} install steps");
    for arg in ["NPM_CONFIG_CACHE", "UV_CACHE_DIR", "PIP_CACHE_DIR"] {
        assert!(
            agents_part.contains(&format!("ARG {arg}=/tmp/terok-build-cache/")),
            "{arg}"
        );
    }
}

#[tokio::test]
async fn an_l1_deeper_than_a_task_can_start_from_is_squashed_and_a_shallow_one_is_not() {
    let fake = FakeRuntime::new();
    let roster = RosterLoader::bundled().load().unwrap();
    let on_sid = |names: &[&str]| {
        let mut r = BuildRequest::new(
            "localhost/debian:sid",
            names.iter().map(|s| (*s).to_owned()).collect(),
        );
        r.ca = CaSource::None;
        r
    };
    let builds = |fake: &FakeRuntime| -> Vec<terok_podman::BuildSpec> {
        fake.calls()
            .into_iter()
            .filter_map(|c| match c {
                FakeCall::Build(b) => Some(*b),
                _ => None,
            })
            .collect()
    };
    let (_, events) = ensure(&fake, &roster, &on_sid(&["claude"])).await;
    assert!(!builds(&fake)[1].squash, "one agent: built step by step");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, BuildEvent::Squashed { .. }))
    );

    let every = [
        "blablador",
        "caddy",
        "claude",
        "codex",
        "copilot",
        "gh",
        "glab",
        "kisski",
        "opencode",
        "openrouter",
        "pi",
        "sonar",
        "toad",
        "vibe",
    ];
    let (built, events) = ensure(&fake, &roster, &on_sid(&every)).await;
    let l1_build = builds(&fake).pop().unwrap();
    assert!(l1_build.squash, "every entry: squashed");
    let Some(BuildEvent::Squashed { layers, limit, .. }) = events
        .iter()
        .find(|e| matches!(e, BuildEvent::Squashed { .. }))
        .cloned()
    else {
        panic!("no Squashed event: {events:?}")
    };
    assert!(layers > limit, "{layers} layers, limit {limit}");
    let made = fake.image_inspect(&built.l1.tag).await.unwrap().unwrap();
    assert!(made.layers.unwrap() <= limit, "{made:?}");
}

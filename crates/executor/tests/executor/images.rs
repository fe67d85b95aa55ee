//! Image choices as an orchestrator makes them: `all` fitted to the base, an entry named on a
//! base it cannot run on refused before podman runs.

use terok_executor::errors::ImageBuildError;
use terok_executor::{BuildEvent, ExecutorError, ImageChoice};

use crate::support::Session;

fn choice(base: &str, agents: &str) -> ImageChoice {
    let mut choice = ImageChoice::default();
    choice.base = Some(base.to_owned());
    choice.agents = Some(agents.to_owned());
    choice
}

#[tokio::test]
async fn all_leaves_out_what_the_base_cannot_run_and_says_so() {
    let session = Session::fake();
    let request = session
        .executor
        .build_request(&choice("localhost/debian:bookworm", "all"))
        .unwrap();
    assert!(request.selection.contains(&"claude".to_owned()));
    assert!(!request.selection.contains(&"pi".to_owned()));
    let left_out: Vec<&str> = request.left_out.iter().map(|u| u.agent.as_str()).collect();
    // Pi needs Node.js 20 (bookworm: 18), Toad Python 3.14 and Vibe 3.12 (bookworm: 3.11).
    assert_eq!(left_out, ["pi", "toad", "vibe"]);
    let mut events = Vec::new();
    session
        .executor
        .ensure_images(&request, &mut |e| events.push(e))
        .await
        .unwrap();
    assert!(
        events.iter().any(
            |e| matches!(e, BuildEvent::LeftOut(u) if u.agent == "pi" && u.base_has.major == 18)
        ),
        "{events:?}"
    );
    // A base with a new enough Node.js and Python 3.13 keeps Pi and Vibe, not Toad.
    let request = session
        .executor
        .build_request(&choice("localhost/debian:trixie", "all"))
        .unwrap();
    assert!(request.selection.contains(&"pi".to_owned()));
    assert!(request.selection.contains(&"vibe".to_owned()));
    let left_out: Vec<&str> = request.left_out.iter().map(|u| u.agent.as_str()).collect();
    assert_eq!(left_out, ["toad"]);
}

#[tokio::test]
async fn an_entry_named_on_a_base_it_cannot_run_on_is_refused_before_podman_runs() {
    let session = Session::fake();
    let request = session
        .executor
        .build_request(&choice("localhost/debian:bookworm", "claude,pi"))
        .unwrap();
    assert!(request.selection.contains(&"pi".to_owned()));
    let err = session
        .executor
        .ensure_images(&request, &mut |_| {})
        .await
        .unwrap_err();
    let ExecutorError::Images(err) = err else {
        panic!("{err}");
    };
    assert!(
        matches!(&*err, ImageBuildError::UnsuitableBase { unsuited, .. } if unsuited[0].agent == "pi"),
        "{err}"
    );
    assert!(session.fake_runtime().calls().is_empty());
}

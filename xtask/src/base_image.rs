//! `cargo xtask base-image`: the local Debian base image tests and the demo build on.

use terok_testkit::base_image::{BASE_IMAGE, BaseImageOutcome, ensure_base_image};

pub fn run() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let outcome = ensure_base_image(&mut |line| println!("base-image: {line}"))?;
    match outcome {
        BaseImageOutcome::Present => println!("base-image: {BASE_IMAGE} already exists"),
        BaseImageOutcome::Created => println!(
            "base-image: created {BASE_IMAGE} in {:.0}s",
            started.elapsed().as_secs_f64()
        ),
    }
    Ok(())
}

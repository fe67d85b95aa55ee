//! `cargo xtask base-image`: the local Debian base images tests, the demo and the image
//! matrix build on.

use terok_testkit::base_image::{BaseImageOutcome, ensure_suite_image, suite_image};

pub fn run(suites: &[String]) -> anyhow::Result<()> {
    for suite in suites {
        let started = std::time::Instant::now();
        let image = suite_image(suite);
        match ensure_suite_image(suite, &mut |line| println!("base-image: {line}"))? {
            BaseImageOutcome::Present => println!("base-image: {image} already exists"),
            BaseImageOutcome::Created => println!(
                "base-image: created {image} in {:.0}s",
                started.elapsed().as_secs_f64()
            ),
        }
    }
    Ok(())
}

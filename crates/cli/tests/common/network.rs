//! A podman network of a test's own, with the test's own containers on it (servers the task
//! reaches); everything is removed on drop. Tests never send traffic anywhere else.

use super::{Host, text};

/// A podman network of this test's own, with HTTP servers on it; removed on drop.
pub struct TestNetwork<'h> {
    host: &'h Host,
    pub name: String,
    servers: Vec<String>,
}

impl<'h> TestNetwork<'h> {
    /// A network in 198.18.0.0/15 (reserved for tests, routed nowhere): outside the ranges the
    /// firewall refuses to names, so a name may lead to its servers.
    pub fn new(host: &'h Host, tag: &str) -> Self {
        let name = format!("terok-test-{tag}-{}", std::process::id());
        let seed = name.bytes().map(usize::from).sum::<usize>();
        for attempt in 0..40 {
            let subnet = format!("198.18.{}.0/24", (seed + attempt) % 250);
            let out = host
                .env
                .command("podman")
                .args(["network", "create", "--subnet", &subnet, &name])
                .output()
                .unwrap();
            if out.status.success() {
                return Self {
                    host,
                    name,
                    servers: Vec::new(),
                };
            }
            // Another test's network has that subnet: try the next.
            assert!(text(&out).contains("subnet"), "{}", text(&out));
        }
        panic!("no free test subnet in 198.18.0.0/16");
    }

    /// An agent image: it has python3.
    pub fn agent_image(&self) -> String {
        let images = self
            .host
            .env
            .command("podman")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .args(["--filter", "reference=*terok-l1-cli*"])
            .output()
            .unwrap();
        let images = String::from_utf8_lossy(&images.stdout).into_owned();
        images
            .lines()
            .next()
            .expect("the agent image is built")
            .to_owned()
    }

    /// The address of container `name` on this network.
    pub fn address_of(&self, name: &str) -> String {
        let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
        let out = self
            .host
            .env
            .command("podman")
            .args(["inspect", "--format", format, name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts an HTTP server on port 8080 of this network; its address.
    pub fn server(&mut self) -> String {
        let image = self.agent_image();
        self.container(
            "srv",
            &[],
            &image,
            &["python3", "-m", "http.server", "8080"],
        )
    }

    /// Starts `command` in a container of `image` on this network (`podman run` gets
    /// `options` too; the container is removed on drop); its address.
    pub fn container(
        &mut self,
        tag: &str,
        options: &[&str],
        image: &str,
        command: &[&str],
    ) -> String {
        let name = format!("{}-{tag}{}", self.name, self.servers.len());
        let out = self
            .host
            .env
            .command("podman")
            .args(["run", "-d", "--name", &name, "--network", &self.name])
            .args(options)
            .arg(image)
            .args(command)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        self.servers.push(name.clone());
        self.address_of(&name)
    }

    /// The container name of the server at `index` (in start order).
    pub fn server_name(&self, index: usize) -> &str {
        &self.servers[index]
    }
}

impl Drop for TestNetwork<'_> {
    fn drop(&mut self) {
        for server in &self.servers {
            let _ = self
                .host
                .env
                .command("podman")
                .args(["rm", "-f", "-t", "0", server])
                .output();
        }
        let _ = self
            .host
            .env
            .command("podman")
            .args(["network", "rm", "-f", &self.name])
            .output();
    }
}

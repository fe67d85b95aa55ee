//! [`Layer`]: which of the images a request builds (L0, L1, a sidecar tool) a step is in.

/// Which image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The base development layer.
    L0,
    /// The agent layer.
    L1,
    /// A sidecar tool image.
    Sidecar,
    /// The vault sidecar of a Kubernetes task: L0 with the executor's binary.
    Vault,
}

impl Layer {
    /// `L0`, `L1`, `L1 (sidecar)`, as printed by `build`.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::L0 => "L0",
            Self::L1 => "L1",
            Self::Sidecar => "L1 (sidecar)",
            Self::Vault => "L1 (vault)",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::L0 => "l0",
            Self::L1 => "l1",
            Self::Sidecar => "sidecar",
            Self::Vault => "vault",
        }
    }
}

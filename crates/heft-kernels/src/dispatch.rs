//! Instruction-set detection and kernel selection.
//!
//! The GEMM microkernel is chosen once per process: the `HEFT_KERNEL`
//! environment variable (`avx512`, `avx2` or `portable`) forces a kernel,
//! otherwise the best kernel the CPU supports is used. Detection runs at run
//! time, so a binary built for generic x86-64 still runs the AVX-512 kernel
//! on a CPU that has it.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Name of the environment variable that forces a GEMM kernel.
pub const KERNEL_ENV: &str = "HEFT_KERNEL";

/// An instruction set with its own GEMM microkernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 AVX-512F: 32 registers of 16 lanes.
    Avx512,
    /// x86-64 AVX2 with FMA: 16 registers of 8 lanes.
    Avx2Fma,
    /// Portable kernel written with `wide`, available on every target.
    Portable,
}

impl Isa {
    /// Every kernel, fastest first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2Fma, Isa::Portable];

    /// Returns the name accepted by [`Isa::from_str`] and `HEFT_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Reports whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2Fma => false,
            Isa::Portable => true,
        }
    }

    /// Returns the fastest kernel this CPU supports.
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.is_available())
            .unwrap_or(Isa::Portable)
    }

    /// Reads `HEFT_KERNEL`: `Ok(None)` when it is unset or empty.
    ///
    /// # Errors
    ///
    /// [`IsaError`] when the value names no kernel or a kernel this CPU lacks.
    pub fn from_env() -> Result<Option<Isa>, IsaError> {
        match std::env::var(KERNEL_ENV) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => {
                let isa: Isa = value.parse()?;
                isa.check_available()?;
                Ok(Some(isa))
            }
            Err(_) => Ok(None),
        }
    }

    /// Returns `Ok(self)` if this CPU can run the kernel.
    ///
    /// # Errors
    ///
    /// [`IsaError`] naming the kernel and the kernels that are available.
    pub fn check_available(self) -> Result<Isa, IsaError> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(IsaError::Unavailable(self))
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = IsaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx512f" | "avx-512" => Ok(Isa::Avx512),
            "avx2" | "avx2fma" | "avx2+fma" | "fma" => Ok(Isa::Avx2Fma),
            "portable" | "wide" | "generic" => Ok(Isa::Portable),
            _ => Err(IsaError::Unknown(s.to_string())),
        }
    }
}

/// An invalid kernel request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsaError {
    /// The name matches no kernel.
    Unknown(String),
    /// The kernel exists but this CPU cannot run it.
    Unavailable(Isa),
}

fn available_names() -> String {
    let names: Vec<&str> = Isa::ALL
        .into_iter()
        .filter(|isa| isa.is_available())
        .map(Isa::name)
        .collect();
    names.join(", ")
}

impl fmt::Display for IsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsaError::Unknown(name) => write!(
                f,
                "unknown kernel {name:?}: expected one of avx512, avx2, portable (available here: {})",
                available_names()
            ),
            IsaError::Unavailable(isa) => write!(
                f,
                "kernel {isa} is not supported by this CPU: choose one of {}",
                available_names()
            ),
        }
    }
}

impl std::error::Error for IsaError {}

/// Returns the process-wide kernel: `HEFT_KERNEL` if set and valid, else the
/// fastest available one.
///
/// The choice is made on the first call and cached. An invalid `HEFT_KERNEL`
/// prints one warning to standard error and falls back to detection;
/// programs that prefer a hard error call [`Isa::from_env`] first.
pub fn selected() -> Isa {
    static SELECTED: OnceLock<Isa> = OnceLock::new();
    *SELECTED.get_or_init(|| match Isa::from_env() {
        Ok(Some(isa)) => isa,
        Ok(None) => Isa::detect(),
        Err(err) => {
            let fallback = Isa::detect();
            eprintln!("heft: warning: {KERNEL_ENV}: {err}; using {fallback}");
            fallback
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(isa.name().parse::<Isa>(), Ok(isa));
        }
    }

    #[test]
    fn unknown_name_lists_choices() {
        let err = "sse9".parse::<Isa>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"sse9\""), "{text}");
        assert!(text.contains("portable"), "{text}");
    }

    #[test]
    fn portable_always_available() {
        assert!(Isa::Portable.is_available());
        assert!(Isa::detect().is_available());
    }
}

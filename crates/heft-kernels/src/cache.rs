//! The size of this core's L2 cache, which sizes the AVX-512 GEMM's packed
//! B blocks (see `gemm::blocking`).

use std::sync::OnceLock;

/// L2 size assumed when the CPU does not report one: 1 MiB, the L2 of a
/// Zen 4 core. Intel server cores since Ice Lake have 1.25 to 2 MiB, so
/// blocks sized for 1 MiB fit there too.
pub(crate) const DEFAULT_L2_BYTES: usize = 1 << 20;

/// L2 sizes taken as reported. Outside this range (for example a
/// hypervisor's zeroed fields), [`l2_bytes`] uses [`DEFAULT_L2_BYTES`].
pub(crate) const PLAUSIBLE_L2_BYTES: std::ops::RangeInclusive<usize> = (64 << 10)..=(64 << 20);

/// Returns the size in bytes of the L2 cache, as the core that first calls
/// this function reports it, or [`DEFAULT_L2_BYTES`] when it reports none
/// or a size outside [`PLAUSIBLE_L2_BYTES`]. Read once per process.
pub(crate) fn l2_bytes() -> usize {
    static L2: OnceLock<usize> = OnceLock::new();
    *L2.get_or_init(|| {
        reported_l2_bytes()
            .filter(|bytes| PLAUSIBLE_L2_BYTES.contains(bytes))
            .unwrap_or(DEFAULT_L2_BYTES)
    })
}

/// Returns the L2 size from CPUID: the deterministic cache parameters of
/// leaf 4 on Intel, and of leaf 0x8000_001D on AMD (the same layout), or
/// `None` on other CPUs and targets.
pub(crate) fn reported_l2_bytes() -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{__cpuid_count, CpuidResult};
        // Recent Rust declares the intrinsic safe, older versions unsafe.
        #[allow(unused_unsafe)]
        let cpuid = |leaf: u32, subleaf: u32| -> CpuidResult {
            // SAFETY: CPUID exists on every x86-64 CPU.
            unsafe { __cpuid_count(leaf, subleaf) }
        };
        let vendor = cpuid(0, 0);
        let max_basic = vendor.eax;
        let vendor: Vec<u8> = [vendor.ebx, vendor.edx, vendor.ecx]
            .iter()
            .flat_map(|word| word.to_le_bytes())
            .collect();
        let leaf = match &vendor[..] {
            b"GenuineIntel" if max_basic >= 4 => 4,
            b"AuthenticAMD" if cpuid(0x8000_0000, 0).eax >= 0x8000_001D => 0x8000_001D,
            _ => return None,
        };
        // Subleaves list one cache each, until one of type 0 (no cache).
        for subleaf in 0..16 {
            let regs = cpuid(leaf, subleaf);
            let kind = regs.eax & 0x1F;
            if kind == 0 {
                break;
            }
            let level = (regs.eax >> 5) & 0x7;
            // Type 1 is a data cache and 3 a unified one (2: instructions).
            if level == 2 && (kind == 1 || kind == 3) {
                let line = (regs.ebx & 0xFFF) as usize + 1;
                let partitions = ((regs.ebx >> 12) & 0x3FF) as usize + 1;
                let ways = (regs.ebx >> 22) as usize + 1;
                let sets = regs.ecx as usize + 1;
                return Some(ways * partitions * line * sets);
            }
        }
        None
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(test)]
mod tests {
    use super::{l2_bytes, reported_l2_bytes, DEFAULT_L2_BYTES, PLAUSIBLE_L2_BYTES};

    /// Returns the L2 sizes that Linux reports in sysfs for each CPU (one
    /// per kind of core on hybrid CPUs), empty if it reports none.
    fn sysfs_l2_sizes() -> Vec<usize> {
        let mut sizes = Vec::new();
        for cpu in 0..1024 {
            let cpu_dir = format!("/sys/devices/system/cpu/cpu{cpu}/cache");
            if !std::path::Path::new(&cpu_dir).exists() {
                break;
            }
            for index in 0..8 {
                let dir = format!("{cpu_dir}/index{index}");
                let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).ok();
                let (Some(level), Some(kind), Some(size)) =
                    (read("level"), read("type"), read("size"))
                else {
                    continue;
                };
                if level.trim() != "2" || kind.trim() == "Instruction" {
                    continue;
                }
                let size = size.trim();
                let (digits, unit) = size.split_at(size.len() - 1);
                let scale = match unit {
                    "K" => 1 << 10,
                    "M" => 1 << 20,
                    _ => continue,
                };
                if let Ok(value) = digits.parse::<usize>() {
                    sizes.push(value * scale);
                }
            }
        }
        sizes
    }

    #[test]
    fn l2_size_matches_linux() {
        let linux = sysfs_l2_sizes();
        let Some(reported) = reported_l2_bytes().filter(|_| !linux.is_empty()) else {
            println!("skipped: CPUID or sysfs reports no L2 size on this machine");
            return;
        };
        assert!(
            linux.contains(&reported),
            "CPUID reports an L2 of {reported} bytes, sysfs {linux:?}"
        );
        assert_eq!(l2_bytes(), reported);
    }

    #[test]
    fn l2_size_is_plausible() {
        let bytes = l2_bytes();
        assert!(
            PLAUSIBLE_L2_BYTES.contains(&bytes),
            "L2 of {bytes} bytes is outside 64 KiB to 64 MiB"
        );
        match reported_l2_bytes() {
            Some(reported) if PLAUSIBLE_L2_BYTES.contains(&reported) => {
                assert_eq!(bytes, reported)
            }
            _ => assert_eq!(bytes, DEFAULT_L2_BYTES),
        }
    }
}

//! Single-precision GEMM: `C <- alpha * A * B + beta * C` on strided views.
//!
//! The structure follows BLIS: five loops around a register-blocked
//! microkernel, with B packed into `KC x NR` micro-panels and A read in
//! place when its rows are contiguous (packed into `MR x KC` micro-panels
//! otherwise). See [`loops`](self) for the loop nest and `blocking` for the
//! cache arithmetic behind the block sizes.
//!
//! # Numerical contract
//!
//! - Every element of C is one fused multiply-add chain over `k` in
//!   increasing order, restarted every `ceil(k / passes)` steps (passes =
//!   `ceil(k / KC)`) and added into C. The
//!   tiling, the thread count and the operand layout do not change that
//!   order, so results are bitwise identical with 1 or N threads, for a
//!   transposed or padded operand, and between [`Gemm::run`] and
//!   [`Gemm::argmax_count`]. Different kernels ([`Isa`]) may round
//!   differently.
//! - `beta == 0` means C is never read: NaN or infinity in C is
//!   overwritten.
//! - `alpha == 0` or `k == 0` skips the product: C becomes `beta * C`
//!   (then the epilogue), and NaN in A or B is not propagated, as in the
//!   reference BLAS.

pub(crate) mod blocking;
mod fused;
pub(crate) mod kernel;
mod loops;
mod pack;
mod view;

pub use fused::argmax_group;
pub use view::{LayoutError, MatMut, MatRef};

use crate::dispatch::{self, Isa, IsaError};
use std::fmt;

/// Operations applied to each finished element of C, in order: add
/// `bias[j]` to column `j`, then `max(x, 0)` if `relu` is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// One value per column of C, added after the product.
    pub bias: Option<&'a [f32]>,
    /// Replace negative results (not NaN) by zero.
    pub relu: bool,
}

/// Invalid GEMM arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GemmError {
    /// The shapes of A, B and C do not chain.
    Shape {
        /// The operation that was called.
        op: &'static str,
        /// `(rows, cols)` of A.
        a: (usize, usize),
        /// `(rows, cols)` of B.
        b: (usize, usize),
        /// `(rows, cols)` of C, or `(rows of A, cols of B)` for fused calls.
        c: (usize, usize),
    },
    /// A slice has the wrong length.
    Length {
        /// The operation that was called.
        op: &'static str,
        /// The argument: `"bias"`, `"labels"` or `"counts"`.
        what: &'static str,
        /// The length the shapes require.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// The argmax group size is zero or does not divide the columns of B.
    Group {
        /// The operation that was called.
        op: &'static str,
        /// Columns of B (0 where the operation takes no B).
        cols: usize,
        /// Requested group size.
        group: usize,
    },
    /// A label is not below the group size.
    Label {
        /// Row of the offending label.
        row: usize,
        /// Its value.
        label: u32,
        /// The group size it must be below.
        group: usize,
    },
    /// A [`SparseA`] or [`ArgmaxA`] used with another kernel than the one
    /// it was packed for.
    Kernel {
        /// The operation that was called.
        op: &'static str,
        /// The kernel A was packed for.
        packed: Isa,
        /// The kernel of the `Gemm` called.
        running: Isa,
    },
}

impl fmt::Display for GemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GemmError::Shape { op, a, b, c } => write!(
                f,
                "{op}: shapes do not chain: A is {}x{}, B is {}x{}, C is {}x{} \
                 (need A m x k, B k x n, C m x n)",
                a.0, a.1, b.0, b.1, c.0, c.1
            ),
            GemmError::Length {
                op,
                what,
                expected,
                actual,
            } => write!(f, "{op}: {what} has {actual} elements, expected {expected}"),
            GemmError::Group { op, group: 0, .. } => write!(
                f,
                "{op}: group size 0 is invalid; pass the number of classes per candidate \
                 (at least 1)"
            ),
            GemmError::Group { op, cols, group } => write!(
                f,
                "{op}: group size {group} does not divide the {cols} columns of B \
                 (use classes per candidate, at least 1)"
            ),
            GemmError::Label { row, label, group } => write!(
                f,
                "argmax_count: label {label} at row {row} is not below the group size {group}"
            ),
            GemmError::Kernel {
                op,
                packed,
                running,
            } => write!(
                f,
                "{op}: A was packed for kernel {packed} but this GEMM runs {running} \
                 (pack A with the Gemm that multiplies it)"
            ),
        }
    }
}

impl std::error::Error for GemmError {}

/// A matrix A packed by [`Gemm::pack_sparse_a`]: its rows in groups of the
/// kernel's `NR`, each group without the steps of k at which all its rows
/// are zero.
pub struct SparseA {
    isa: Isa,
    panels: loops::SparsePanels,
}

impl SparseA {
    /// Returns the number of rows of the packed A.
    pub fn rows(&self) -> usize {
        self.panels.n
    }

    /// Returns the number of columns of the packed A.
    pub fn cols(&self) -> usize {
        self.panels.k
    }

    /// Returns the kernel A was packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Returns the fraction of steps of k that the packing dropped, over
    /// all groups of rows: the share of multiply-adds a product skips.
    pub fn skipped_fraction(&self) -> f64 {
        let groups = self.rows().div_ceil(self.panels.nr);
        let steps = (groups * self.cols()) as f64;
        if steps == 0.0 {
            return 0.0;
        }
        let kept: u64 = self.panels.counts.iter().map(|&c| u64::from(c)).sum();
        1.0 - kept as f64 / steps
    }
}

impl std::fmt::Debug for SparseA {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseA")
            .field("isa", &self.isa)
            .field("rows", &self.rows())
            .field("cols", &self.cols())
            .finish_non_exhaustive()
    }
}

/// A GEMM configuration: which kernel runs and whether blocks of C are
/// spread over the rayon thread pool.
///
/// Threads come from the pool the call runs in, so
/// `pool.install(|| gemm.run(...))` sets the thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    isa: Isa,
    parallel: bool,
}

impl Default for Gemm {
    fn default() -> Self {
        Self::new()
    }
}

impl Gemm {
    /// Uses the process-wide kernel ([`dispatch::selected`]) and runs in
    /// parallel when the `parallel` feature is on.
    pub fn new() -> Self {
        Gemm {
            isa: dispatch::selected(),
            parallel: cfg!(feature = "parallel"),
        }
    }

    /// Uses the given kernel without reading `HEFT_KERNEL`, and runs in
    /// parallel when the `parallel` feature is on.
    ///
    /// # Errors
    ///
    /// [`IsaError::Unavailable`] if this CPU cannot run it.
    pub fn with_isa(isa: Isa) -> Result<Self, IsaError> {
        Ok(Gemm {
            isa: isa.check_available()?,
            parallel: cfg!(feature = "parallel"),
        })
    }

    /// Runs every call on the calling thread only.
    pub fn sequential(self) -> Self {
        Gemm {
            parallel: false,
            ..self
        }
    }

    /// Returns the kernel this configuration runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Returns the kernel variants the GEMM chooses from by shape
    /// ([`kernel::variants`]), without allocating.
    fn kernels(&self) -> ([&'static kernel::KernelSpec; 3], usize) {
        let mut kernels = [kernel::spec(self.isa); 3];
        let mut count = 0;
        for spec in kernel::variants(self.isa) {
            kernels[count] = spec;
            count += 1;
        }
        (kernels, count)
    }

    /// Returns the register tile `(MR, NR)` of the kernel's main tile,
    /// the one the sparse products ([`Gemm::run_sparse_a`]) run: 12 x 32
    /// with AVX-512, 6 x 16 with AVX2. Dense products choose by shape
    /// between it and the ISA's other tiles: 6 x 64 and 24 x 16 with
    /// AVX-512, 12 x 8 with AVX2.
    pub fn tile(&self) -> (usize, usize) {
        let spec = kernel::spec(self.isa);
        (spec.mr, spec.nr)
    }

    /// Computes `C <- alpha * A * B + beta * C`.
    ///
    /// # Errors
    ///
    /// [`GemmError::Shape`] if A is not `m x k`, B `k x n` and C `m x n`.
    pub fn run(
        &self,
        alpha: f32,
        a: MatRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        c: MatMut<'_>,
    ) -> Result<(), GemmError> {
        self.run_with(alpha, a, b, beta, c, Epilogue::default())
    }

    /// Computes `C <- epilogue(alpha * A * B + beta * C)`.
    ///
    /// # Errors
    ///
    /// [`GemmError::Shape`] for shapes that do not chain and
    /// [`GemmError::Length`] for a bias whose length is not `n`.
    pub fn run_with(
        &self,
        alpha: f32,
        a: MatRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        mut c: MatMut<'_>,
        epilogue: Epilogue<'_>,
    ) -> Result<(), GemmError> {
        check_product("gemm", (a.rows(), a.cols()), &b, &c, &epilogue)?;
        let (kernels, count) = self.kernels();
        let parallel = self.parallel && worth_threads(a.rows(), a.cols(), b.cols());
        loops::gemm(
            self.isa,
            &kernels[..count],
            parallel,
            alpha,
            a,
            b,
            beta,
            c.rb(),
            epilogue,
        );
        Ok(())
    }

    /// Computes `C <- alpha * A * B + beta * C`, then the epilogue, like
    /// [`Gemm::run_with`], but skips the products with zeros of A. A's rows
    /// are taken in groups of `NR` consecutive rows (`NR` is the second
    /// value of [`Gemm::tile`]), and each group leaves out the steps of k at
    /// which all its rows are zero. For an A with many exact zeros (images, ReLU
    /// outputs), ordering its rows so that rows with zeros in the same
    /// columns share a group skips more.
    ///
    /// With finite B the result is bitwise equal to [`Gemm::run_with`]'s:
    /// a skipped product is a zero, and adding a zero never changes a sum
    /// that starts at +0. Where B contains NaN or infinity, its products with
    /// skipped zeros of A are not formed, so C may be finite where
    /// [`Gemm::run_with`] gives NaN.
    ///
    /// The product runs as `C^T = B^T A^T`, so C with contiguous columns
    /// (column-major) is stored whole vectors at a time.
    ///
    /// # Errors
    ///
    /// As for [`Gemm::run_with`].
    pub fn run_sparse_a(
        &self,
        alpha: f32,
        a: MatRef<'_>,
        b: MatRef<'_>,
        beta: f32,
        mut c: MatMut<'_>,
        epilogue: Epilogue<'_>,
    ) -> Result<(), GemmError> {
        check_product("gemm_sparse_a", (a.rows(), a.cols()), &b, &c, &epilogue)?;
        loops::gemm_sparse_a(
            kernel::spec(self.isa),
            self.parallel && worth_threads(a.rows(), a.cols(), b.cols()),
            alpha,
            loops::BSource::View(a.t()),
            b,
            beta,
            c.rb(),
            epilogue,
        );
        Ok(())
    }

    /// Packs A once for repeated [`Gemm::run_packed_sparse_a`] products,
    /// which then skip A's zeros as [`Gemm::run_sparse_a`] does without
    /// packing A again. The packed copy takes about as much memory as A.
    pub fn pack_sparse_a(&self, a: MatRef<'_>) -> SparseA {
        let parallel = self.parallel && worth_threads(a.rows(), a.cols(), 64);
        SparseA {
            isa: self.isa,
            panels: loops::pack_sparse_panels(kernel::spec(self.isa), parallel, &a.t()),
        }
    }

    /// Computes `C <- alpha * A * B + beta * C`, then the epilogue, for an
    /// A packed by [`Gemm::pack_sparse_a`]. The result is the one
    /// [`Gemm::run_sparse_a`] gives for the A that was packed.
    ///
    /// # Errors
    ///
    /// [`GemmError::Kernel`] if A was packed by a `Gemm` with another
    /// kernel, and the errors of [`Gemm::run_with`].
    pub fn run_packed_sparse_a(
        &self,
        alpha: f32,
        a: &SparseA,
        b: MatRef<'_>,
        beta: f32,
        mut c: MatMut<'_>,
        epilogue: Epilogue<'_>,
    ) -> Result<(), GemmError> {
        const OP: &str = "gemm_packed_sparse_a";
        if a.isa != self.isa {
            return Err(GemmError::Kernel {
                op: OP,
                packed: a.isa,
                running: self.isa,
            });
        }
        check_product(OP, (a.rows(), a.cols()), &b, &c, &epilogue)?;
        loops::gemm_sparse_a(
            kernel::spec(self.isa),
            self.parallel && worth_threads(a.rows(), a.cols(), b.cols()),
            alpha,
            loops::BSource::Packed(&a.panels),
            b,
            beta,
            c.rb(),
            epilogue,
        );
        Ok(())
    }

    /// Returns the number of consecutive rows of A over which
    /// [`Gemm::argmax_count`] skips zero features together for groups of
    /// `group` columns: a step of k is skipped for such a run of rows when
    /// all of them are zero there. Returns 1 where the kernel skips none.
    /// Ordering A's rows so that runs share their zero columns makes the
    /// count faster and leaves it unchanged.
    pub fn argmax_zero_rows(&self, group: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        if let Some((_, rows)) = crate::arch::class_major::sparse_kernel_for(self.isa, group) {
            return rows;
        }
        let _ = group;
        1
    }

    /// Counts, for each group of `group` consecutive columns of
    /// `A * B + bias`, the rows whose argmax within the group equals the
    /// row's label, without storing the product.
    ///
    /// With `P` candidates of `group = classes` columns each, `counts[p]`
    /// is candidate `p`'s number of correct predictions. Ties go to the
    /// lowest index and NaN counts as larger than any number (the first NaN
    /// wins), as `torch.argmax` does; see [`argmax_group`].
    ///
    /// # Errors
    ///
    /// [`GemmError`] if `A` is not `m x k` with `B` `k x n`, if `group`
    /// does not divide `n`, if `bias` is not `n` long, `labels` not `m`
    /// long, `counts` not `n / group` long, or a label is not below
    /// `group`.
    pub fn argmax_count(
        &self,
        a: MatRef<'_>,
        b: MatRef<'_>,
        bias: Option<&[f32]>,
        group: usize,
        labels: &[u32],
        counts: &mut [u64],
    ) -> Result<(), GemmError> {
        self.check_argmax("argmax_count", &a, &b, bias, group, labels, counts)?;
        fused::argmax_count(
            self.isa,
            kernel::spec(self.isa),
            self.parallel && worth_threads(a.rows(), a.cols(), b.cols()),
            a,
            b,
            bias,
            group,
            labels,
            counts,
            None,
        );
        Ok(())
    }

    /// Checks the arguments of a fused argmax count.
    #[allow(clippy::too_many_arguments)]
    fn check_argmax(
        &self,
        op: &'static str,
        a: &MatRef<'_>,
        b: &MatRef<'_>,
        bias: Option<&[f32]>,
        group: usize,
        labels: &[u32],
        counts: &[u64],
    ) -> Result<(), GemmError> {
        let (m, n) = (a.rows(), b.cols());
        if a.cols() != b.rows() {
            return Err(shape_error(op, a, b, (m, n)));
        }
        if group == 0 || n % group != 0 {
            return Err(GemmError::Group { op, cols: n, group });
        }
        if let Some(bias) = bias {
            check_len(op, "bias", n, bias.len())?;
        }
        check_len(op, "labels", m, labels.len())?;
        check_len(op, "counts", n / group, counts.len())?;
        // A maximum over all labels has no early exit, so it compiles to
        // vector code. The search for the first bad label checks one label
        // per step, which cost 2 % of a (12000, 128, 10) count.
        let largest = labels.iter().copied().fold(0, u32::max);
        if largest as usize >= group {
            let row = labels
                .iter()
                .position(|&l| l as usize >= group)
                .expect("the largest label is out of range");
            return Err(GemmError::Label {
                row,
                label: labels[row],
                group,
            });
        }
        Ok(())
    }

    /// Packs A once for repeated [`Gemm::argmax_count_packed`] calls with
    /// groups of `group` columns. The class-major kernels then read their
    /// panels of samples, and the sparse kernel its chunks without zero
    /// features, from the packed copy instead of packing them per call.
    /// Where no class-major kernel takes `group`, only a copy of A is kept.
    /// The packed form takes about twice the memory of A: a copy and the
    /// panels. With AVX2, whose sparse kernel also keeps the chunks, it
    /// takes about three times.
    ///
    /// # Errors
    ///
    /// [`GemmError::Group`] if `group` is zero.
    pub fn pack_argmax_a(&self, a: MatRef<'_>, group: usize) -> Result<ArgmaxA, GemmError> {
        if group == 0 {
            return Err(GemmError::Group {
                op: "pack_argmax_a",
                cols: 0,
                group,
            });
        }
        let (rows, cols) = (a.rows(), a.cols());
        let (values, rs, cs) = (a.data(), a.row_stride(), a.col_stride());
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            data.extend((0..cols).map(|j| values[i * rs + j * cs]));
        }
        Ok(ArgmaxA {
            isa: self.isa,
            group,
            rows,
            cols,
            panels: fused::ClassPanels::new(self.isa, &a, group),
            data,
        })
    }

    /// Counts hits as [`Gemm::argmax_count`] does, with the group size of
    /// the packed A and the same result.
    ///
    /// # Errors
    ///
    /// [`GemmError::Kernel`] if A was packed by a `Gemm` with another
    /// kernel, and the errors of [`Gemm::argmax_count`].
    pub fn argmax_count_packed(
        &self,
        a: &ArgmaxA,
        b: MatRef<'_>,
        bias: Option<&[f32]>,
        labels: &[u32],
        counts: &mut [u64],
    ) -> Result<(), GemmError> {
        const OP: &str = "argmax_count_packed";
        if a.isa != self.isa {
            return Err(GemmError::Kernel {
                op: OP,
                packed: a.isa,
                running: self.isa,
            });
        }
        let view = MatRef::row_major(&a.data, a.rows, a.cols)
            .expect("the packed copy has rows * cols elements");
        let group = a.group;
        self.check_argmax(OP, &view, &b, bias, group, labels, counts)?;
        fused::argmax_count(
            self.isa,
            kernel::spec(self.isa),
            self.parallel && worth_threads(a.rows, a.cols, b.cols()),
            view,
            b,
            bias,
            group,
            labels,
            counts,
            a.panels.as_ref(),
        );
        Ok(())
    }
}

/// A matrix A packed by [`Gemm::pack_argmax_a`] for repeated fused argmax
/// counts.
pub struct ArgmaxA {
    isa: Isa,
    group: usize,
    rows: usize,
    cols: usize,
    /// A row-major, for the paths that read A itself.
    data: Vec<f32>,
    panels: Option<fused::ClassPanels>,
}

impl ArgmaxA {
    /// Returns the number of rows of the packed A.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Returns the number of columns of the packed A.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Returns the group size the counts use.
    pub fn group(&self) -> usize {
        self.group
    }

    /// Returns the share of the (chunk of rows, step of k) pairs that the
    /// sparse count skips because the chunk is all zero there: the share
    /// of multiply-adds saved. 0 where the kernel skips none.
    pub fn skipped_fraction(&self) -> f64 {
        self.panels
            .as_ref()
            .map_or(0.0, fused::ClassPanels::skipped_fraction)
    }
}

impl std::fmt::Debug for ArgmaxA {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgmaxA")
            .field("isa", &self.isa)
            .field("group", &self.group)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

/// Computes `C <- alpha * A * B + beta * C` with the default [`Gemm`].
///
/// # Errors
///
/// [`GemmError::Shape`] if the shapes do not chain.
pub fn sgemm(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
) -> Result<(), GemmError> {
    Gemm::new().run(alpha, a, b, beta, c)
}

/// Products below this many multiply-adds run on the calling thread: at
/// about 100 GFLOP/s they take some 40 microseconds, the order of the cost
/// of waking and joining rayon workers, which made small products (an LSTM
/// step, a batch of one) slower with two threads than with one.
const MIN_PARALLEL_MULTIPLY_ADDS: usize = 1 << 21;

/// Reports whether an `m x k` by `k x n` product is large enough to split.
fn worth_threads(m: usize, k: usize, n: usize) -> bool {
    m.saturating_mul(k).saturating_mul(n) >= MIN_PARALLEL_MULTIPLY_ADDS
}

/// Checks that an A of shape `a`, B and C chain as `C = A * B` and that
/// the epilogue's bias has one value per column of C.
fn check_product(
    op: &'static str,
    a: (usize, usize),
    b: &MatRef<'_>,
    c: &MatMut<'_>,
    epilogue: &Epilogue<'_>,
) -> Result<(), GemmError> {
    if a.0 != c.rows() || b.cols() != c.cols() || a.1 != b.rows() {
        return Err(GemmError::Shape {
            op,
            a,
            b: (b.rows(), b.cols()),
            c: (c.rows(), c.cols()),
        });
    }
    if let Some(bias) = epilogue.bias {
        check_len(op, "bias", c.cols(), bias.len())?;
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn shape_error(op: &'static str, a: &MatRef<'_>, b: &MatRef<'_>, c: (usize, usize)) -> GemmError {
    GemmError::Shape {
        op,
        a: (a.rows(), a.cols()),
        b: (b.rows(), b.cols()),
        c,
    }
}

fn check_len(
    op: &'static str,
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), GemmError> {
    if expected == actual {
        Ok(())
    } else {
        Err(GemmError::Length {
            op,
            what,
            expected,
            actual,
        })
    }
}

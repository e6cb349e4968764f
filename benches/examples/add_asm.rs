//! Micro-benchmark: what makes the lazy counter's inline add cost more than one bare
//! `lock inc` (issue 12, row 5)? Each variant is a whole loop in inline asm (exact
//! instructions, exact alignment), shaped like `hot-add`'s `add_loop`: the counter's address
//! goes through the stack every add (`black_box`), then the add. x86_64 only.
//!
//!     cargo run --release -p pcpu-bench --example add_asm [ITERS] [ROUNDS]
//!
//! Prints ns per add, best of the rounds, and each variant's ratio to `arc` (the loop of the
//! `shared AtomicI64 (Arc)` peer; `plain` is the `plain AtomicI64` peer's).
//!
//! What it showed on the 2-vCPU AMD EPYC (Zen 4, family 25 model 17) VM, 5 runs of 9 rounds:
//! `arc` 1.73-1.76 ns, `plain` 1.94-1.98, today's pcpu loop (`pcpu_now`) 2.10 (1.19-1.21x),
//! at every loop alignment (`pcpu_now_a16/a40/a56`). The cost is the locked op's result:
//! `xadd_only` (no state load, no sampling check) is 2.07-2.08, `state_xadd` 2.06-2.09,
//! while the state load, its test and a `lock inc`/`lock add` (`state_inc`, `state_addimm`,
//! `state_addreg`) is 1.82-1.84 (1.04-1.06x): the state word's load on the count's line
//! costs nothing (it even beats `plain`, whose `lock inc` follows the pointer's reload at
//! once), nor does the branch layout. Reading the count before a `lock inc` on it
//! (`count_inc`, a prefilter that takes the `xadd` only when the loaded count predicts a
//! sampled add) costs as much as the `xadd` (2.07): any way of getting the count's value
//! into a register in the loop costs ~0.25 ns here. Branching on the flags of a `lock add`
//! (`state_add_zf`, ZF: the count reached 0) costs 1.89-1.92; reading AF with `lahf`
//! (`state_add_lahf`, a 1-in-16 event for +1) 1.95-2.01; a CAS loop (`state_cas`) 2.46.
//!
#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::asm;
    use std::time::Instant;

    /// 16-byte counter (count, state) on its own 128 bytes; an `Arc`-like box too.
    #[repr(C, align(128))]
    pub struct Line {
        pub w: [u64; 16],
    }

    macro_rules! variant {
        ($name:ident, $pad:literal, $body:literal) => {
            #[inline(never)]
            pub fn $name(p: *mut u64, iters: u64) {
                // SAFETY: p addresses a `Line`; the loop only touches its first 24 bytes, and
                // the 8 bytes below rsp (the asm is not `nostack`: the compiler keeps nothing there).
                unsafe {
                    asm!(
                        "jmp 3f",
                        ".p2align 6",
                        $pad,
                        "3:",
                        "2:",
                        "mov [rsp-8], {p}",
                        "mov rdi, [rsp-8]",
                        $body,
                        "dec {n}",
                        "jne 2b",
                        "jmp 5f",
                        "4:",
                        // cold path: "sample"/"header" -- count it in word 2 and go on
                        "inc qword ptr [rdi+16]",
                        "dec {n}",
                        "jne 2b",
                        "5:",
                        p = in(reg) p,
                        n = inout(reg) iters => _,
                        out("rdi") _, out("rax") _, out("rcx") _, out("rsi") _,
                    );
                }
            }
        };
    }

    // The peers.
    variant!(plain, "", "lock inc qword ptr [rdi]");
    variant!(arc, "", "mov rdi, [rdi+24]\n lock inc qword ptr [rdi+16]");
    // Today's pcpu loop (state load, test, xadd, sampling check).
    variant!(pcpu_now, "", "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov eax, 1\n lock xadd [rdi], rax\n lea rcx, [rax+1]\n xor rcx, rax\n cmp rcx, 64\n jae 4f");
    // xadd + sampling, no state load.
    variant!(xadd_sample, "", "mov eax, 1\n lock xadd [rdi], rax\n lea rcx, [rax+1]\n xor rcx, rax\n cmp rcx, 64\n jae 4f");
    // xadd, result unused.
    variant!(xadd_only, "", "mov eax, 1\n lock xadd [rdi], rax");
    // state load + test + lock inc (no sampling).
    variant!(
        state_inc,
        "",
        "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n lock inc qword ptr [rdi]"
    );
    // state load + test + xadd, result unused.
    variant!(
        state_xadd,
        "",
        "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov eax, 1\n lock xadd [rdi], rax"
    );
    // state load, no branch on it, lock inc.
    variant!(load_inc, "", "mov rsi, [rdi+8]\n lock inc qword ptr [rdi]");
    // state load from the next line, lock inc.
    variant!(
        otherline_inc,
        "",
        "mov rsi, [rdi+64]\n test sil, 1\n je 4f\n lock inc qword ptr [rdi]"
    );
    // state after: xadd, then load the state (after the locked op), sampling check.
    variant!(xadd_then_state, "", "mov eax, 1\n lock xadd [rdi], rax\n mov rsi, [rdi+8]\n test sil, 1\n je 4f\n lea rcx, [rax+1]\n xor rcx, rax\n cmp rcx, 64\n jae 4f");
    // pcpu_now with a cheaper sampling check (low 6 bits of old == 63 for +1).
    variant!(pcpu_and, "", "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov eax, 1\n lock xadd [rdi], rax\n not eax\n test al, 63\n je 4f");
    // pcpu_now at other alignments of the loop top.
    variant!(pcpu_now_a16, ".skip 16, 0x90", "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov eax, 1\n lock xadd [rdi], rax\n lea rcx, [rax+1]\n xor rcx, rax\n cmp rcx, 64\n jae 4f");
    variant!(pcpu_now_a40, ".skip 40, 0x90", "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov eax, 1\n lock xadd [rdi], rax\n lea rcx, [rax+1]\n xor rcx, rax\n cmp rcx, 64\n jae 4f");
    variant!(pcpu_now_a56, ".skip 56, 0x90", "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov eax, 1\n lock xadd [rdi], rax\n lea rcx, [rax+1]\n xor rcx, rax\n cmp rcx, 64\n jae 4f");
    variant!(plain_a56, ".skip 56, 0x90", "lock inc qword ptr [rdi]");
    variant!(
        arc_a56,
        ".skip 56, 0x90",
        "mov rdi, [rdi+24]\n lock inc qword ptr [rdi+16]"
    );

    // A load of the count itself before the locked op on it (a prefilter on the count: xadd
    // if it predicts a crossing, else lock inc).
    variant!(count_inc, "", "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov rax, [rdi]\n lea rcx, [rax+1]\n xor rcx, rax\n cmp rcx, 64\n jb 8f\n mov eax, 1\n lock xadd [rdi], rax\n jmp 9f\n 8:\n lock inc qword ptr [rdi]\n 9:");
    // lock add with a register / an immediate.
    variant!(
        state_addreg,
        "",
        "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov eax, 1\n lock add [rdi], rax"
    );
    variant!(
        state_addimm,
        "",
        "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n lock add qword ptr [rdi], 1"
    );
    variant!(addimm_only, "", "lock add qword ptr [rdi], 1");
    // xadd with its source register set early.
    variant!(xadd_early, "", "mov eax, 1\n mov rsi, [rdi+8]\n test sil, 1\n je 4f\n lock xadd [rdi], rax\n lea rcx, [rax+1]\n xor rcx, rax\n cmp rcx, 64\n jae 4f");
    // lock add, then a lahf-based AF test (a 1-in-16 prefilter for +1).
    variant!(state_add_lahf, "", "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n lock add qword ptr [rdi], 1\n lahf\n test ah, 16\n jne 6f\n 6:");
    // lock add, then ZF/SF test (what LLVM gives for `fetch_add(d) + d == 0`).
    variant!(
        state_add_zf,
        "",
        "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n lock add qword ptr [rdi], 1\n je 4f"
    );
    // cmpxchg loop (load, add, cas).
    variant!(state_cas, "", "mov rsi, [rdi+8]\n test sil, 1\n je 4f\n mov rax, [rdi]\n lea rcx, [rax+1]\n lock cmpxchg [rdi], rcx\n jne 4f\n xor rcx, rax\n cmp rcx, 64\n jae 4f");

    type F = fn(*mut u64, u64);
    pub const VARIANTS: &[(&str, F)] = &[
        ("plain", plain),
        ("arc", arc),
        ("plain_a56", plain_a56),
        ("arc_a56", arc_a56),
        ("pcpu_now", pcpu_now),
        ("pcpu_now_a16", pcpu_now_a16),
        ("pcpu_now_a40", pcpu_now_a40),
        ("pcpu_now_a56", pcpu_now_a56),
        ("pcpu_and", pcpu_and),
        ("xadd_sample", xadd_sample),
        ("xadd_only", xadd_only),
        ("state_inc", state_inc),
        ("state_xadd", state_xadd),
        ("load_inc", load_inc),
        ("otherline_inc", otherline_inc),
        ("xadd_then_state", xadd_then_state),
        ("count_inc", count_inc),
        ("state_addreg", state_addreg),
        ("state_addimm", state_addimm),
        ("addimm_only", addimm_only),
        ("xadd_early", xadd_early),
        ("state_add_lahf", state_add_lahf),
        ("state_add_zf", state_add_zf),
        ("state_cas", state_cas),
    ];

    pub fn main() {
        let mut args = std::env::args().skip(1);
        let iters: u64 = args.next().map_or(5_000_000, |s| s.parse().unwrap());
        let rounds: usize = args.next().map_or(7, |s| s.parse().unwrap());
        let target = Box::new(Line { w: [0; 16] });
        let mut line = Box::new(Line { w: [0; 16] });
        line.w[1] = 1; // inline state
        line.w[8] = 1; // a state word on the next line
                       // "Arc": word 3 points at another line whose word 2 is the count.
        line.w[3] = &*target as *const Line as u64;
        let p = &mut line.w[0] as *mut u64;
        let mut best = vec![f64::INFINITY; VARIANTS.len()];
        for _ in 0..rounds {
            for (i, (_, f)) in VARIANTS.iter().enumerate() {
                let t = Instant::now();
                f(p, iters);
                let ns = t.elapsed().as_nanos() as f64 / iters as f64;
                best[i] = best[i].min(ns);
            }
        }
        let peer = best[0].min(best[1]);
        for (i, (name, _)) in VARIANTS.iter().enumerate() {
            println!("{name:<16} {:6.3} ns  {:5.3}x", best[i], best[i] / peer);
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    imp::main();
}

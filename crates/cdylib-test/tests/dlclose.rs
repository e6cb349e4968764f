//! Loading and unloading (`dlopen`/`dlclose`) a shared object that uses pcpu-counter while
//! threads that ran its critical sections keep running.
//!
//! The kernel keeps a pointer to the last critical-section descriptor a thread armed
//! (`rseq_cs` in the thread's rseq area) and reads the descriptor, and the signature before
//! its abort handler, whenever it preempts the thread or delivers it a signal. With glibc's
//! registration the area belongs to glibc and outlives the library; the descriptors and
//! handlers are in the library. A thread whose `rseq_cs` still pointed into the library after
//! the unload would be killed (SIGSEGV) on its next preemption or signal, far from any pcpu
//! code. pcpu therefore clears `rseq_cs` at the end of every section (`pcpu_rseq::abi`).
//!
//! Scenarios, each in a child process (this binary again, with `PCPU_DLCLOSE_CHILD` set), so
//! that a SIGSEGV fails the scenario and says so:
//! - `users_outlive_library`: four threads add through the library; each makes one last add
//!   and then, without returning to the kernel in between, either spins or sleeps on a futex.
//!   The library is unloaded (on glibc's registration the test checks that it really is
//!   unmapped, else it could not catch the fault); then the sleepers are woken and every
//!   thread gets a signal, and all of them must survive. With pcpu's own registration
//!   (`GLIBC_TUNABLES=glibc.pthread.rseq=0`) the area lives in the library's TLS and the
//!   library must stay mapped while those threads live (their TLS destructor, which ends the
//!   registration, pins it); it must unload once they have exited. The portable backend's
//!   per-thread epoch handle pins it the same way.
//! - `reload_cycles`: three rounds of load, add from four threads (exact sum), unload (it must
//!   really unmap), with fresh threads each round and one thread that keeps running and
//!   taking signals throughout.
//!
//! Which backend each needs: any. The children report which one ran (`registration`); CI runs
//! this test on glibc's registration, on pcpu's own and on the portable backend.

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("dlclose: SKIPPED (dlopen of the pcpu cdylib is tested on Linux only)");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::{c_void, CString};
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    /// Set in a child: the scenario to run.
    const CHILD_ENV: &str = "PCPU_DLCLOSE_CHILD";
    /// Path of the shared object, passed to the children.
    const LIB_ENV: &str = "PCPU_DLCLOSE_LIB";

    type Scenario = fn(&Path);
    const SCENARIOS: [(&str, Scenario); 2] = [
        ("users_outlive_library", users_outlive_library),
        ("reload_cycles", reload_cycles),
    ];

    pub fn main() {
        if let Ok(name) = std::env::var(CHILD_ENV) {
            // A panic on any thread fails the child at once (a panicking worker would leave
            // the others waiting for it).
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                hook(info);
                std::process::exit(101);
            }));
            let lib = PathBuf::from(std::env::var_os(LIB_ENV).expect("the parent sets the path"));
            let (_, run) = SCENARIOS
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no scenario {name}"));
            run(&lib);
            return;
        }
        let lib = find_library();
        println!("dlclose: loading {}", lib.display());
        let mut failed = Vec::new();
        for (name, _) in SCENARIOS {
            println!("dlclose: {name} ...");
            match run_child(name, &lib) {
                Ok(()) => println!("dlclose: {name} ok"),
                Err(why) => {
                    println!("dlclose: {name} FAILED: {why}");
                    failed.push(name);
                }
            }
        }
        if !failed.is_empty() {
            panic!("dlclose scenarios failed: {failed:?}");
        }
        println!("dlclose: {} scenarios passed", SCENARIOS.len());
    }

    /// `libpcpu_cdylib_test.so`, which cargo builds beside this test binary (in `deps/`;
    /// a `cargo build` also copies it one directory up).
    fn find_library() -> PathBuf {
        let exe = std::env::current_exe().expect("current_exe");
        let deps = exe.parent().expect("the test binary is in a directory");
        let name = "libpcpu_cdylib_test.so";
        [deps.join(name), deps.join("..").join(name)]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{name} not found beside {}", exe.display()))
    }

    /// Runs one scenario in a child process; a signal, a failure or 300 s without finishing
    /// is an error.
    fn run_child(name: &str, lib: &Path) -> Result<(), String> {
        let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .env(CHILD_ENV, name)
            .env(LIB_ENV, lib)
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                use std::os::unix::process::ExitStatusExt;
                return match status.signal() {
                    None if status.success() => Ok(()),
                    None => Err(format!("child exited with {status}")),
                    Some(libc::SIGSEGV) => Err(
                        "child killed by SIGSEGV (did a thread's rseq_cs point into the \
                         unloaded library?)"
                            .into(),
                    ),
                    Some(sig) => Err(format!("child killed by signal {sig}")),
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("timed out after 300 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The library's C interface (see `src/lib.rs`): its handle and functions. Plain data:
    /// after [`close`](Lib::close) the workers still hold a reference but never call through it.
    #[derive(Clone, Copy)]
    struct Lib {
        handle: *mut c_void,
        new: extern "C" fn() -> *mut c_void,
        add: unsafe extern "C" fn(*const c_void, i64),
        sum: unsafe extern "C" fn(*const c_void) -> i64,
        is_per_cpu: unsafe extern "C" fn(*const c_void) -> i32,
        free: unsafe extern "C" fn(*mut c_void),
        registration: extern "C" fn() -> i32,
    }

    // SAFETY: the handle and the functions may be used from any thread (the library's counters
    // are `Sync`); the scenarios call them only while the library is loaded.
    unsafe impl Sync for Lib {}
    // SAFETY: as above.
    unsafe impl Send for Lib {}

    /// Looks up `name` in `handle`.
    ///
    /// # Safety
    /// `handle` is a live `dlopen` handle and `T` is the type of the symbol's function.
    unsafe fn sym<T: Copy>(handle: *mut c_void, name: &str) -> T {
        let c = CString::new(name).unwrap();
        // SAFETY: `handle` is live (caller), `c` is NUL-terminated.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        assert!(!p.is_null(), "{name} not found in the library");
        assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
        // SAFETY: the caller guarantees `T` is the function pointer type of the symbol.
        unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) }
    }

    impl Lib {
        fn open(path: &CString) -> Lib {
            // SAFETY: a NUL-terminated path; loading runs the library's initialisers (none
            // besides Rust's own).
            let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            assert!(!handle.is_null(), "dlopen failed: {}", dlerror());
            // SAFETY: each type is the signature of the `extern "C"` function in src/lib.rs.
            unsafe {
                Lib {
                    handle,
                    new: sym(handle, "pcpu_cdylib_new"),
                    add: sym(handle, "pcpu_cdylib_add"),
                    sum: sym(handle, "pcpu_cdylib_sum"),
                    is_per_cpu: sym(handle, "pcpu_cdylib_is_per_cpu"),
                    free: sym(handle, "pcpu_cdylib_free"),
                    registration: sym(handle, "pcpu_cdylib_registration"),
                }
            }
        }

        fn new_counter(&self) -> Counter {
            let c = (self.new)();
            assert!(!c.is_null(), "the library could not create a counter");
            Counter(c)
        }

        fn add(&self, c: Counter, delta: i64) {
            // SAFETY: `c` is live: the scenarios free a counter only after its last use.
            unsafe { (self.add)(c.0, delta) }
        }

        fn sum(&self, c: Counter) -> i64 {
            // SAFETY: as in `add`.
            unsafe { (self.sum)(c.0) }
        }

        fn is_per_cpu(&self, c: Counter) -> bool {
            // SAFETY: as in `add`.
            unsafe { (self.is_per_cpu)(c.0) != 0 }
        }

        /// # Safety
        /// No thread uses `c` any more, and it is freed once.
        unsafe fn free(&self, c: Counter) {
            // SAFETY: forwarded from the caller; `c` came from `new_counter`.
            unsafe { (self.free)(c.0) }
        }

        fn registration(&self) -> Registration {
            Registration::from_code((self.registration)())
        }

        /// `dlclose`; returns whether the object at `path` is gone from the process afterwards.
        ///
        /// # Safety
        /// No thread calls into the library any more, and `close` is called once per `open`.
        unsafe fn close(&self, path: &CString) -> bool {
            // SAFETY: forwarded from the caller; `handle` came from dlopen.
            let rc = unsafe { libc::dlclose(self.handle) };
            assert_eq!(rc, 0, "dlclose: {}", dlerror());
            !is_loaded(path)
        }
    }

    /// Whether the object at `path` is mapped: `dlopen` with `RTLD_NOLOAD` finds only loaded
    /// objects (and takes a reference, given back at once).
    fn is_loaded(path: &CString) -> bool {
        // SAFETY: a NUL-terminated path; RTLD_NOLOAD never loads anything.
        let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
        if h.is_null() {
            return false;
        }
        // SAFETY: `h` is the reference RTLD_NOLOAD just took.
        unsafe { libc::dlclose(h) };
        true
    }

    fn dlerror() -> String {
        // SAFETY: dlerror has no preconditions; it returns null or a NUL-terminated message.
        let e = unsafe { libc::dlerror() };
        if e.is_null() {
            return "(no message)".into();
        }
        // SAFETY: non-null: a NUL-terminated string, valid until the next dl call here.
        unsafe { std::ffi::CStr::from_ptr(e) }
            .to_string_lossy()
            .into_owned()
    }

    fn c_path(path: &Path) -> CString {
        CString::new(path.as_os_str().as_encoded_bytes()).expect("a path without NUL")
    }

    /// A counter of the library (an opaque pointer), shared between threads by value.
    #[derive(Clone, Copy)]
    struct Counter(*mut c_void);
    // SAFETY: the counter is `Sync` inside the library; here the pointer is only passed back
    // to it.
    unsafe impl Send for Counter {}
    // SAFETY: as above.
    unsafe impl Sync for Counter {}

    /// `pcpu_rseq::Registration` of a thread, as the library reports it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Registration {
        Glibc,
        Own,
        Unavailable,
        Portable,
    }

    impl Registration {
        fn from_code(code: i32) -> Registration {
            match code {
                0 => Registration::Glibc,
                1 => Registration::Own,
                2 => Registration::Unavailable,
                3 => Registration::Portable,
                r => panic!("unknown registration code {r}"),
            }
        }
    }

    /// SIGUSR1 handlers run so far (the handler does nothing else).
    static SIGNALS: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn on_signal(_: libc::c_int) {
        SIGNALS.fetch_add(1, Ordering::SeqCst);
    }

    fn install_handler() {
        // SAFETY: all-zero bytes are a valid `sigaction`: no flags, an empty mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa.sa_mask` is a valid, writable `sigset_t`.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is initialised and its handler only increments an atomic
        // (async-signal-safe); the old action may be null.
        let rc = unsafe { libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "sigaction");
    }

    /// The calling thread's `pthread_t`, as an integer to share through an atomic.
    fn this_thread() -> usize {
        // SAFETY: pthread_self has no preconditions.
        unsafe { libc::pthread_self() as usize }
    }

    /// Sends SIGUSR1 to `thread` (from [`this_thread`]) and waits until its handler ran
    /// (delivering it, the kernel read the thread's `rseq_cs`).
    fn signal_and_wait(thread: usize) {
        let before = SIGNALS.load(Ordering::SeqCst);
        // SAFETY: `thread` is alive: the scenarios join their threads only after this.
        let rc = unsafe { libc::pthread_kill(thread as libc::pthread_t, libc::SIGUSR1) };
        assert_eq!(rc, 0);
        wait_until("the signal handler", || {
            SIGNALS.load(Ordering::SeqCst) != before
        });
    }

    /// Sleeps while `*word == 0` (a futex wait, repeated after signals and spurious wakes).
    fn futex_wait_while_zero(word: &AtomicU32) {
        while word.load(Ordering::Acquire) == 0 {
            // SAFETY: `word` is a live, aligned u32; FUTEX_WAIT only reads it and sleeps.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    0u32,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        }
    }

    /// Sets `*word` to 1 and wakes every waiter.
    fn futex_wake_all(word: &AtomicU32) {
        word.store(1, Ordering::Release);
        // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only wakes waiters on it.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            )
        };
    }

    fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    const WORKERS: usize = 4;
    const ADDS: i64 = 100_000;

    /// Shares `value` with threads for the rest of the (short-lived) child process.
    fn leak<T>(value: T) -> &'static T {
        Box::leak(Box::new(value))
    }

    /// Runs `f` on a new thread and waits until that thread is gone, its TLS destructors
    /// included (`pthread_join`; a scoped thread's join returns before its destructors run,
    /// and those of the library's thread-locals keep the library mapped while pending).
    fn on_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
        std::thread::spawn(f).join().expect("thread panicked")
    }

    /// See the module documentation.
    fn users_outlive_library(path: &Path) {
        install_handler();
        let path = c_path(path);
        let lib = leak(Lib::open(&path));
        let counter = leak(AtomicPtr::new(std::ptr::null_mut()));
        let barrier = leak(Barrier::new(WORKERS));
        let parked = leak(AtomicUsize::new(0));
        let registration = leak(AtomicI32::new(-1));
        let wake = leak(AtomicU32::new(0));
        let stop = leak(AtomicBool::new(false));
        let tids = leak(
            (0..WORKERS)
                .map(|_| AtomicUsize::new(0))
                .collect::<Vec<_>>(),
        );
        // Only the workers, and a checker thread that exits, call into the library: with
        // pcpu's own registration a call from this thread would register an area in the
        // library's TLS and pin the library for the rest of the process.
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| {
                std::thread::spawn(move || {
                    tids[i].store(this_thread(), Ordering::Relaxed);
                    if i == 0 {
                        counter.store(lib.new_counter().0, Ordering::Release);
                    }
                    barrier.wait();
                    let c = Counter(counter.load(Ordering::Acquire));
                    registration.store((lib.registration)(), Ordering::Relaxed);
                    for _ in 0..ADDS {
                        lib.add(c, 1);
                    }
                    barrier.wait();
                    // The last call into the library, a critical section. From here on
                    // nothing enters the kernel until the library is gone: the spinners spin
                    // through the unload, the sleepers sleep until after it.
                    lib.add(c, 1);
                    parked.fetch_add(1, Ordering::Release);
                    if i % 2 == 1 {
                        futex_wait_while_zero(wake);
                    }
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        wait_until("every worker's last add", || {
            parked.load(Ordering::Acquire) == WORKERS
        });
        // A checker thread sums and frees the counter, and is gone before the unload.
        on_thread(|| {
            let c = Counter(counter.load(Ordering::Acquire));
            assert!(
                lib.is_per_cpu(c),
                "the counter's adds must run critical sections"
            );
            assert_eq!(lib.sum(c), WORKERS as i64 * (ADDS + 1));
            // SAFETY: the workers are parked and never use the counter again.
            unsafe { lib.free(c) };
        });
        let reg = Registration::from_code(registration.load(Ordering::Relaxed));
        // SAFETY: no thread calls into the library any more; opened once, closed once.
        let unloaded = unsafe { lib.close(&path) };
        println!(
            "users_outlive_library: {WORKERS} workers on {reg:?}; the library was {} while \
             they lived",
            if unloaded { "unloaded" } else { "kept mapped" }
        );
        match reg {
            Registration::Glibc => assert!(
                unloaded,
                "with glibc's registration nothing pins the library, so dlclose must unmap it \
                 (else this test cannot see a stale rseq_cs)"
            ),
            Registration::Own => assert!(
                !unloaded,
                "with pcpu's own registration the rseq areas are in the library's TLS: it must \
                 stay mapped while threads registered through it live"
            ),
            Registration::Portable | Registration::Unavailable => {}
        }
        // Back to user space after the unload: the sleepers wake, every worker is signalled
        // and gets some time to be preempted.
        futex_wake_all(wake);
        for tid in tids {
            signal_and_wait(tid.load(Ordering::Relaxed));
        }
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("a worker panicked");
        }
        println!(
            "users_outlive_library: every worker survived its wake-up, a signal and 200 ms of \
             preemption after the unload"
        );
        if !unloaded {
            // The users have exited (their TLS destructors ran): now it must unload.
            let lib = Lib::open(&path);
            // SAFETY: nothing calls into the library; opened once, closed once.
            let unloaded = unsafe { lib.close(&path) };
            assert!(
                unloaded,
                "{reg:?}: the library must unload once the threads that used it have exited"
            );
            println!("users_outlive_library: unloaded once they had exited");
        }
    }

    /// See the module documentation.
    fn reload_cycles(path: &Path) {
        install_handler();
        let path = c_path(path);
        let stop = leak(AtomicBool::new(false));
        let bystander_tid = leak(AtomicUsize::new(0));
        // A thread that runs throughout and never uses the library.
        let bystander = std::thread::spawn(|| {
            bystander_tid.store(this_thread(), Ordering::Release);
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        wait_until("the bystander", || {
            bystander_tid.load(Ordering::Acquire) != 0
        });
        for round in 0..3 {
            let lib = leak(Lib::open(&path));
            let counter = leak(AtomicPtr::new(std::ptr::null_mut()));
            let barrier = leak(Barrier::new(WORKERS));
            let workers: Vec<_> = (0..WORKERS)
                .map(|i| {
                    std::thread::spawn(move || {
                        if i == 0 {
                            counter.store(lib.new_counter().0, Ordering::Release);
                        }
                        barrier.wait();
                        let c = Counter(counter.load(Ordering::Acquire));
                        for _ in 0..ADDS / 10 {
                            lib.add(c, 1);
                        }
                        barrier.wait();
                        if i == 0 {
                            assert_eq!(lib.sum(c), WORKERS as i64 * (ADDS / 10));
                            // SAFETY: every worker passed the barrier after its last add.
                            unsafe { lib.free(c) };
                        }
                        lib.registration()
                    })
                })
                .collect();
            let regs: Vec<_> = workers
                .into_iter()
                .map(|w| w.join().expect("a worker panicked"))
                .collect();
            // SAFETY: the workers are gone; opened once, closed once.
            let unloaded = unsafe { lib.close(&path) };
            println!(
                "reload_cycles: round {round} on {:?}: unloaded {unloaded}",
                regs[0]
            );
            assert!(
                unloaded,
                "the library must unload once its users have exited"
            );
            signal_and_wait(bystander_tid.load(Ordering::Acquire));
        }
        stop.store(true, Ordering::Relaxed);
        bystander.join().expect("the bystander panicked");
    }
}

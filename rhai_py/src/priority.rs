//! Long runs give way: a run still going after [`DEMOTE_AFTER`] lowers its own thread's CPU
//! priority (nice +[`DEMOTE_BY`]) until it ends.
//!
//! A member's long script (`loop {}` until its timeout) keeps a core busy; every other
//! member's short `play` then shares that core with it, and each wake-up may wait out the long
//! run's time slice. Demoted, the long run is preempted at once by anything of normal priority
//! (the ASGI process, Redis, the run of another member), so short runs keep their latency.
//! Only the thread running the script is demoted (Linux: nice is per thread). Raising the
//! priority back needs `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it (systemd:
//! `LimitNICE=`); without either the thread stays demoted, which only ever slows scripts.

use std::time::Duration;

/// How long a run goes at normal priority.
pub const DEMOTE_AFTER: Duration = Duration::from_millis(25);
/// How many nice steps a long run gives up.
pub const DEMOTE_BY: i32 = 10;

/// The priority a demoted run held before, to restore when it ends.
#[derive(Clone, Copy, Debug)]
pub struct Demotion {
    previous: i32,
}

/// Lower this thread's priority by [`DEMOTE_BY`]; None when it could not.
#[cfg(target_os = "linux")]
pub fn demote() -> Option<Demotion> {
    // SAFETY: getpriority/setpriority on this thread's own id (PRIO_PROCESS with a TID is
    // per-thread on Linux); errno is cleared first because -1 is a valid priority.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let previous = libc::getpriority(libc::PRIO_PROCESS, tid);
        if previous == -1 && *libc::__errno_location() != 0 {
            return None;
        }
        if libc::setpriority(libc::PRIO_PROCESS, tid, (previous + DEMOTE_BY).min(19)) != 0 {
            return None;
        }
        Some(Demotion { previous })
    }
}

#[cfg(not(target_os = "linux"))]
pub fn demote() -> Option<Demotion> {
    None
}

/// Give this thread back the priority it had before `demotion` (best effort, see the module).
pub fn restore(demotion: Demotion) {
    #[cfg(target_os = "linux")]
    // SAFETY: as in `demote`.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, demotion.previous);
    }
}

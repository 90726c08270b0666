//! Checking settings before they are used: the error every configuration type's `validate`
//! returns ([`RelayConfig::validate`] here, `DriverConfig::validate` in `signaling`,
//! `WsConfig::validate` in `signaling-ws`).
//!
//! A setting is invalid when no deployment could mean it: a limit of 0 that would refuse every
//! peer, a timeout of 0 that would cut every connection at once. Settings whose 0 has a
//! documented meaning (`resume_grace = 0` turns resume off) are not refused. Run `validate` when
//! the configuration is loaded, so that a server refuses to start rather than refusing its
//! users.
use std::fmt;
use std::time::Duration;

use crate::relay::RelayConfig;

/// A setting that cannot work, with its value and why.
///
/// Displays as `room_capacity = 0: a room must hold at least one peer`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting} = {value}: {reason}")]
#[non_exhaustive]
pub struct InvalidSetting {
    /// The setting's name, as the configuration type's field (and configuration file key) is
    /// named.
    pub setting: &'static str,
    /// Its value, as written in a configuration file (durations in seconds).
    pub value: String,
    /// Why it cannot work, in words.
    pub reason: &'static str,
}

impl InvalidSetting {
    /// A setting `setting` whose value `value` cannot work because of `reason`.
    pub fn new(setting: &'static str, value: impl fmt::Display, reason: &'static str) -> Self {
        Self {
            setting,
            value: value.to_string(),
            reason,
        }
    }

    /// Refuses a zero count or size.
    pub fn check_nonzero(
        setting: &'static str,
        value: impl Into<u64>,
        reason: &'static str,
    ) -> Result<(), Self> {
        let value = value.into();
        if value == 0 {
            return Err(Self::new(setting, value, reason));
        }
        Ok(())
    }

    /// Refuses a zero duration.
    pub fn check_nonzero_duration(
        setting: &'static str,
        value: Duration,
        reason: &'static str,
    ) -> Result<(), Self> {
        if value.is_zero() {
            return Err(Self::new(setting, Secs(value), reason));
        }
        Ok(())
    }
}

/// A duration written as seconds, the way configuration files give them.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

// `RelayConfig`'s check lives beside the error it returns.
impl RelayConfig {
    /// Refuses settings that cannot work: no room for a peer (`room_capacity`, `max_rooms`,
    /// `max_peers` of 0), no frame small enough (`max_frame_len` of 0), a rate that refuses
    /// every frame (`rate_per_sec` or `rate_burst` of 0), an ordering guard that holds no
    /// candidate (`guard_frames` of 0 with `ordering_guard` on), and an `idle_timeout` of 0
    /// (every connection idle at once). The mailbox bounds may be 0 (no mailbox), and so may
    /// `resume_grace` (no resume).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        type Check = (&'static str, usize, &'static str);
        let counts: [Check; 4] = [
            (
                "room_capacity",
                self.room_capacity,
                "a room must hold at least one peer",
            ),
            (
                "max_rooms",
                self.max_rooms,
                "the relay must allow at least one room",
            ),
            (
                "max_peers",
                self.max_peers,
                "the relay must allow at least one peer",
            ),
            (
                "max_frame_len",
                self.max_frame_len,
                "every frame would be refused",
            ),
        ];
        for (setting, value, reason) in counts {
            InvalidSetting::check_nonzero(setting, value as u64, reason)?;
        }
        InvalidSetting::check_nonzero(
            "rate_per_sec",
            self.rate_per_sec,
            "every connection would be closed once its burst is spent",
        )?;
        InvalidSetting::check_nonzero(
            "rate_burst",
            self.rate_burst,
            "every frame would exceed the rate",
        )?;
        if self.ordering_guard {
            InvalidSetting::check_nonzero(
                "guard_frames",
                self.guard_frames as u64,
                "with ordering_guard on, every candidate sent before the offer would be refused",
            )?;
        }
        InvalidSetting::check_nonzero_duration(
            "idle_timeout",
            self.idle_timeout,
            "every connection would be closed as idle at once",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_zero_limits_are_refused_by_name() {
        assert_eq!(RelayConfig::default().validate(), Ok(()));
        let config = RelayConfig {
            room_capacity: 0,
            ..RelayConfig::default()
        };
        let error = config.validate().expect_err("refused");
        assert_eq!(error.setting, "room_capacity");
        assert_eq!(
            error.to_string(),
            "room_capacity = 0: a room must hold at least one peer"
        );

        let config = RelayConfig {
            idle_timeout: Duration::ZERO,
            ..RelayConfig::default()
        };
        assert_eq!(
            config.validate().map_err(|e| e.setting),
            Err("idle_timeout")
        );

        // Zero with a documented meaning is accepted.
        let config = RelayConfig {
            resume_grace: Duration::ZERO,
            mailbox_frames: 0,
            ordering_guard: false,
            guard_frames: 0,
            ..RelayConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
    }
}

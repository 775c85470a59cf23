//! Input smoothing: turns raw pointer samples into the points a freehand stroke keeps.
//!
//! Two light steps, both applied once by the author so that every client renders the same
//! points: an exponential "streamline" filter that removes hand and sensor jitter without the
//! lag of a wide window, and decimation of samples closer than a fraction of a screen pixel.
//! A mouse or finger reports no real pressure, so one is simulated from speed (fast strokes
//! thin out, like ink). The curve through the kept points is drawn by [`crate::shape`].

use crate::geom::Pt;

/// What kind of device drew a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// A mouse or trackpad: no pressure.
    Mouse,
    /// A finger: no pressure.
    Touch,
    /// A stylus: real pressure.
    Stylus,
}

/// One pointer sample in world pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Where.
    pub at: Pt,
    /// The device's pressure in `0..=1` (ignored unless it is a stylus).
    pub pressure: f64,
    /// When, in milliseconds (any monotonic clock).
    pub time_ms: f64,
}

/// How a freehand tool smooths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// How much of the previous smoothed position a sample 8 ms after it keeps (0: none).
    pub streamline: f64,
    /// Whether pressure shapes the stroke at all (the highlighter is flat).
    pub pressure: bool,
}

impl Profile {
    /// The pen: little smoothing for a stylus (its samples are precise), more for a mouse.
    pub fn pen(device: Device) -> Self {
        Self {
            streamline: if device == Device::Stylus { 0.2 } else { 0.4 },
            pressure: true,
        }
    }

    /// The highlighter: strong smoothing, like a broad marker, and no pressure.
    pub fn highlighter() -> Self {
        Self {
            streamline: 0.55,
            pressure: false,
        }
    }
}

/// Samples closer than this (screen pixels) to the last kept point are dropped.
const MIN_SCREEN_DISTANCE: f64 = 0.75;
/// The sample interval the streamline factors are defined for (ms).
const SAMPLE_MS: f64 = 8.0;
/// The neutral pressure: the stroke's nominal width.
pub const NEUTRAL_PRESSURE: f64 = 0.5;

/// The smoothing state of one stroke being drawn.
#[derive(Debug, Clone)]
pub struct Smoother {
    profile: Profile,
    device: Device,
    min_distance: f64,
    zoom: f64,
    smoothed: Option<Pt>,
    kept: Option<Pt>,
    pressure: f64,
    last: Option<Sample>,
}

impl Smoother {
    /// A smoother for a stroke drawn at `zoom` (screen pixels per world pixel).
    pub fn new(profile: Profile, device: Device, zoom: f64) -> Self {
        Self {
            profile,
            device,
            min_distance: MIN_SCREEN_DISTANCE / zoom.max(1e-6),
            zoom: zoom.max(1e-6),
            smoothed: None,
            kept: None,
            pressure: NEUTRAL_PRESSURE,
            last: None,
        }
    }

    /// Feeds a sample; returns the point to keep, if any, with its pressure.
    pub fn push(&mut self, s: Sample) -> Option<(Pt, f64)> {
        let pressure = self.pressure_of(&s);
        // The filter is defined per 8 ms (a 125 Hz pointer), and scaled to the real gap
        // between samples: a pointer that reports rarely must not drag its corners along.
        let p = match (self.smoothed, self.last) {
            (Some(prev), Some(last)) => {
                let steps = ((s.time_ms - last.time_ms) / SAMPLE_MS).clamp(0.25, 16.0);
                prev.lerp(s.at, 1.0 - self.profile.streamline.powf(steps))
            }
            (Some(prev), None) => prev.lerp(s.at, 1.0 - self.profile.streamline),
            (None, _) => s.at,
        };
        self.smoothed = Some(p);
        self.last = Some(s);
        if let Some(k) = self.kept
            && k.dist(p) < self.min_distance
        {
            return None;
        }
        self.kept = Some(p);
        Some((p, pressure))
    }

    /// The stroke ends at `s`: returns the final point, exactly where the pointer lifted, so
    /// the smoothing never leaves the end of a stroke short of the pen.
    pub fn finish(&mut self, s: Sample) -> Option<(Pt, f64)> {
        let pressure = self.pressure_of(&s);
        let k = self.kept?;
        if k.dist(s.at) < self.min_distance {
            return None;
        }
        self.kept = Some(s.at);
        Some((s.at, pressure))
    }

    fn pressure_of(&mut self, s: &Sample) -> f64 {
        if !self.profile.pressure {
            return NEUTRAL_PRESSURE;
        }
        let target = match self.device {
            // Some styluses report 0 on the first contact: treat it as unknown.
            Device::Stylus if s.pressure > 0.0 => s.pressure.clamp(0.0, 1.0),
            Device::Stylus => self.pressure,
            Device::Mouse | Device::Touch => match self.last {
                None => NEUTRAL_PRESSURE,
                Some(last) => {
                    let dt = (s.time_ms - last.time_ms).max(1.0);
                    let speed = last.at.dist(s.at) * self.zoom / dt;
                    // Screen pixels per millisecond: slow (0) → 0.6, fast (≥ 4) → 0.3.
                    (0.6 - speed * 0.075).clamp(0.3, 0.6)
                }
            },
        };
        // Ease towards the target so the width never jumps between samples.
        let ease = if self.device == Device::Stylus {
            0.5
        } else {
            0.2
        };
        self.pressure += (target - self.pressure) * ease;
        self.pressure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(x: f64, y: f64, t: f64) -> Sample {
        Sample {
            at: Pt::new(x, y),
            pressure: 0.5,
            time_ms: t,
        }
    }

    #[test]
    fn jitter_is_damped_and_tiny_moves_dropped() {
        let mut s = Smoother::new(Profile::pen(Device::Mouse), Device::Mouse, 1.0);
        assert_eq!(s.push(sample(0.0, 0.0, 0.0)).unwrap().0, Pt::new(0.0, 0.0));
        // A sideways jitter of 10 px moves the kept point less than that.
        let (p, _) = s.push(sample(10.0, 10.0, 8.0)).unwrap();
        assert!(p.y > 0.0 && p.y < 10.0);
        // Once the filter has caught up with a resting pointer, sub-pixel moves are dropped.
        for i in 0..40 {
            s.push(sample(10.0, 10.0, 16.0 + f64::from(i)));
        }
        assert!(s.push(sample(10.0, 10.1, 100.0)).is_none());
        // The stroke still ends exactly under the pointer.
        assert_eq!(
            s.finish(sample(20.0, 10.0, 108.0)).unwrap().0,
            Pt::new(20.0, 10.0)
        );
    }

    #[test]
    fn sparse_samples_keep_their_corners() {
        let mut dense = Smoother::new(Profile::pen(Device::Mouse), Device::Mouse, 1.0);
        let mut sparse = Smoother::new(Profile::pen(Device::Mouse), Device::Mouse, 1.0);
        dense.push(sample(0.0, 0.0, 0.0));
        sparse.push(sample(0.0, 0.0, 0.0));
        let d = dense.push(sample(100.0, 0.0, 8.0)).unwrap().0;
        let s = sparse.push(sample(100.0, 0.0, 48.0)).unwrap().0;
        // The same jump lags less when it took the pointer longer.
        assert!(s.x > 99.0 && d.x < 70.0, "dense {d:?}, sparse {s:?}");
    }

    #[test]
    fn zoomed_in_keeps_finer_detail() {
        let mut near = Smoother::new(Profile::pen(Device::Stylus), Device::Stylus, 8.0);
        near.push(sample(0.0, 0.0, 0.0));
        assert!(near.push(sample(0.3, 0.0, 1.0)).is_some());
        let mut far = Smoother::new(Profile::pen(Device::Stylus), Device::Stylus, 1.0);
        far.push(sample(0.0, 0.0, 0.0));
        assert!(far.push(sample(0.3, 0.0, 1.0)).is_none());
    }

    #[test]
    fn mouse_pressure_thins_with_speed_and_stylus_pressure_is_real() {
        let mut slow = Smoother::new(Profile::pen(Device::Mouse), Device::Mouse, 1.0);
        let mut fast = Smoother::new(Profile::pen(Device::Mouse), Device::Mouse, 1.0);
        let (mut ps, mut pf) = (0.0, 0.0);
        for i in 0..20 {
            let t = f64::from(i) * 8.0;
            if let Some((_, p)) = slow.push(sample(f64::from(i) * 2.0, 0.0, t)) {
                ps = p;
            }
            if let Some((_, p)) = fast.push(sample(f64::from(i) * 60.0, 0.0, t)) {
                pf = p;
            }
        }
        assert!(ps > 0.55 && pf < 0.35, "slow {ps}, fast {pf}");

        let mut pen = Smoother::new(Profile::pen(Device::Stylus), Device::Stylus, 1.0);
        let mut last = 0.0;
        for i in 0..10 {
            let mut s = sample(f64::from(i) * 5.0, 0.0, f64::from(i));
            s.pressure = 1.0;
            last = pen.push(s).unwrap().1;
        }
        assert!(last > 0.95);
        let mut flat = Smoother::new(Profile::highlighter(), Device::Stylus, 1.0);
        let mut s = sample(0.0, 0.0, 0.0);
        s.pressure = 1.0;
        assert_eq!(flat.push(s).unwrap().1, NEUTRAL_PRESSURE);
    }
}

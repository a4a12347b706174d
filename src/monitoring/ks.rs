//! The two-sample Kolmogorov–Smirnov test, two-sided, as SciPy 1.17's `ks_2samp` computes it in
//! its default mode (`method="auto"`): the exact p-value when neither sample has more than 10,000
//! values, else the asymptotic one from the distribution of the one-sample statistic, `kstwo`, at
//! `round(n·m/(n+m))`.
//!
//! Sources (ported, not linked; no maintained Rust crate carries these distributions):
//! - exact: `_compute_prob_outside_square` (equal sizes) from `scipy/stats/_stats_py.py`, and
//!   `_compute_outer_prob_inside_method` from `scipy/stats/_stats_pythran.py` (Hodges 1958, with
//!   Viehmann's 1 − p recursion, arXiv:2102.08037);
//! - asymptotic: `kolmogn(n, x, cdf=False)` of `scipy/stats/_ksstats.py` (Simard & L'Ecuyer
//!   2011): Ruben–Gambino at the ends, Durbin's matrix (Marsaglia–Tsang–Wang), Pelz–Good, and
//!   2 × Smirnov's one-sided tail (Birnbaum–Tingey sum) for small p-values. SciPy's Pomeranz
//!   branch (n ≤ 140, 0.75 < n·x² ≤ 4) is computed with Durbin's matrix, which is exact there
//!   too; the Smirnov tail is summed in log space in f64 where SciPy uses double-double.
//!
//! Golden values: `tests/fixtures/drift_golden.json` (`ks_cases`, every branch above), made by
//! `bench/drift_golden.py` with SciPy 1.17.1; the tests require agreement within 1e-6.

use statrs::function::gamma::ln_gamma;

/// Above this many values on either side, SciPy's "auto" mode switches to the asymptotic p-value.
pub const MAX_EXACT_N: usize = 10_000;

/// The result of [`ks_2samp`]: the statistic D (the largest distance between the two empirical
/// CDFs, 0..=1) and its two-sided p-value (0..=1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    pub statistic: f64,
    pub pvalue: f64,
}

/// Two-sided two-sample KS test of `a` and `b`, both **sorted ascending, finite, non-empty**.
/// Returns `None` when a side is empty.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Option<KsResult> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let d = statistic(a, b);
    let g = gcd(n1, n2);
    if n1.max(n2) <= MAX_EXACT_N {
        let lcm = (n1 / g) as f64 * n2 as f64;
        let h = round_half_even(d * lcm);
        let d_exact = h / lcm;
        if h == 0.0 {
            return Some(KsResult {
                statistic: d_exact,
                pvalue: 1.0,
            });
        }
        let h = h as i64;
        let prob = if n1 == n2 {
            prob_outside_square(n1 as i64, h)
        } else {
            outer_prob_inside_method(n1 as i64, n2 as i64, g as i64, h)
        };
        if (0.0..=1.0).contains(&prob) {
            return Some(KsResult {
                statistic: d_exact,
                pvalue: prob,
            });
        }
        // SciPy warns and falls back to the asymptotic p-value, with the rounded statistic.
        return Some(KsResult {
            statistic: d_exact,
            pvalue: asymptotic(n1, n2, d_exact),
        });
    }
    Some(KsResult {
        statistic: d,
        pvalue: asymptotic(n1, n2, d),
    })
}

fn asymptotic(n1: usize, n2: usize, d: f64) -> f64 {
    let (m, n) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = m * n / (m + n);
    kolmogn_sf(round_half_even(en) as u64, d).clamp(0.0, 1.0)
}

/// D = max |F_a − F_b| over the pooled values, as SciPy forms it (`cdf1 − cdf2` at each value,
/// right-continuous).
fn statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        while a.get(i).is_some_and(|&x| x <= v) {
            i += 1;
        }
        while b.get(j).is_some_and(|&y| y <= v) {
            j += 1;
        }
        let diff = i as f64 / n1 - j as f64 / n2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    if min_s > max_s { min_s } else { max_s }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// NumPy's `np.round`: halves go to the even neighbour.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// Share of lattice paths that leave the band |x − y| < h, for two samples of size `n`.
fn prob_outside_square(n: i64, h: i64) -> f64 {
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// Share of lattice paths from (0,0) to (m,n) that do not stay strictly inside |x/m − y/n| <
/// h/lcm(m,n), by the 1 − p recursion over a sliding window of one column.
fn outer_prob_inside_method(m: i64, n: i64, g: i64, h: i64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = m / g;
    let ng = n / g;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1).max(1) as usize;
    let mut a = vec![1.0_f64; len_a];
    for slot in a.iter_mut().take(maxj.max(0) as usize) {
        *slot = 0.0;
    }
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        minj = (((ng * i - h) as f64 / mg as f64).floor() as i64 + 1).max(0);
        minj = minj.min(n);
        maxj = (((ng * i + h) as f64 / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let prev = a
                .get((jj + minj - lastminj) as usize)
                .copied()
                .unwrap_or(1.0);
            val = (prev * i as f64 + val * j as f64) / (i + j) as f64;
            if let Some(slot) = a.get_mut(jj as usize) {
                *slot = val;
            }
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let from = (maxj - minj) as usize;
            let to = (maxj - minj + (lastlen - curlen)) as usize;
            for slot in a.iter_mut().take(to).skip(from) {
                *slot = 1.0;
            }
        }
    }
    a.get((maxj - minj - 1) as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

const PI_SQUARED: f64 = std::f64::consts::PI * std::f64::consts::PI;
const MIN_LOG: f64 = -708.0;
/// `cephes`' MINLOG, log(2^-1022).
const CEPHES_MINLOG: f64 = -7.083_964_185_322_641e2;
const SMIRNOV_MAX_COMPUTE_N: u64 = 1_000_000;

/// The survival function of the two-sided one-sample KS statistic D_n at x: Pr(D_n > x).
pub fn kolmogn_sf(n: u64, x: f64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let cdf = if n <= 140 {
            (1..=n).fold(1.0, |p, i| p * (i as f64 * (1.0 / nf) * (2.0 * t - 1.0)))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 4.0 {
            // SciPy: Durbin's matrix up to 0.754693, Pomeranz up to 4; both exact.
            return (1.0 - durbin_cdf(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return (2.0 * smirnov_sf(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(nf, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

/// log(n! / n^n) by Stirling's series with the n·log(n) term removed (SciPy's
/// `_log_nfactorial_div_n_pow_n`).
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const COEFFS: [f64; 8] = [
        -2.955_065_359_477_124e-2,
        6.410_256_410_256_41e-3,
        -1.917_526_917_526_917_6e-3,
        8.417_508_417_508_417e-4,
        -5.952_380_952_380_952e-4,
        7.936_507_936_507_937e-4,
        -2.777_777_777_777_778e-3,
        8.333_333_333_333_333e-2,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    let poly = COEFFS.iter().fold(0.0, |acc, c| acc * x + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// Pr(D_n ≤ d) by Durbin's matrix, as Marsaglia, Tsang and Wang (2003) compute it (SciPy's
/// `_kolmogn_DMTW`), scaling by 2^128 to stay in range.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powi(j as i32)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        if let Some(slot) = w.get_mut(j - 1) {
            *slot = fac;
        }
        fac /= j as f64;
        if let Some(slot) = v.get_mut(j - 1) {
            *slot *= fac;
        }
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    if let Some(last) = v.last_mut() {
        *last = (1.0 + tt) * fac;
    }
    let mut hm = Matrix::zeros(m);
    for i in 1..m {
        for r in (i - 1)..m {
            hm.set(r, i, w.get(r - (i - 1)).copied().unwrap_or(0.0));
        }
    }
    for (r, &value) in v.iter().enumerate() {
        hm.set(r, 0, value);
    }
    for (c, &value) in v.iter().rev().enumerate() {
        hm.set(m - 1, c, value);
    }
    let scale = 2f64.powi(128);
    let mut hpwr = Matrix::identity(m);
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut hexpnt: i64 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            hpwr = hpwr.mul(&hm);
            expnt += hexpnt;
        }
        hm = hm.mul(&hm);
        hexpnt *= 2;
        if hm.get(k - 1, k - 1).abs() > scale {
            hm.scale(1.0 / scale);
            hexpnt += 128;
        }
        nn /= 2;
    }
    let mut p = hpwr.get(k - 1, k - 1);
    let nf = n as f64;
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < 1.0 / scale {
            p *= scale;
            expnt -= 128;
        }
    }
    if expnt != 0 {
        p *= 2f64.powi(expnt.clamp(-2000, 2000) as i32);
    }
    p.clamp(0.0, 1.0)
}

/// Pelz and Good's (1976) approximation of Pr(D_n ≤ x) (SciPy's `_kolmogn_PelzGood`).
fn pelz_good_cdf(n: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi = std::f64::consts::PI;
    let pi4 = PI_SQUARED * PI_SQUARED;
    let pi6 = pi4 * PI_SQUARED;
    let sqrt2pi = (2.0 * pi).sqrt();
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -PI_SQUARED / 8.0 / z2;
    if qlog < MIN_LOG {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = PI_SQUARED / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * PI_SQUARED / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = PI_SQUARED * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0_f64; 4];
    let maxk = (16.0 * z / pi).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (slot, c) in k.iter_mut().zip(coeffs) {
            *slot = *slot * qpower + c;
        }
    }
    let divisors = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (slot, div) in k.iter_mut().zip(divisors) {
        *slot = *slot * q * sqrt2pi / div;
    }
    let q = (-PI_SQUARED / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    for kk in (1..=maxk).rev() {
        let kf = kk as f64;
        let ksq = kf * kf;
        let qp = q.powf(ksq);
        k2extra += ksq * qp;
        let kspi = pi * kf;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
    }
    k[2] += k2extra * PI_SQUARED * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * PI_SQUARED * sqrt2pi / (216.0 * z6);
    k.iter()
        .enumerate()
        .map(|(i, v)| v / n.powf(i as f64 / 2.0))
        .sum()
}

/// Smirnov's one-sided survival function Pr(D+_n ≥ x) (SciPy's `scipy.special.smirnov`), by the
/// Birnbaum–Tingey sum  x · Σ_{j=0}^{⌊n(1−x)⌋} C(n,j) (1 − x − j/n)^(n−j) (x + j/n)^(j−1).
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    if !(0.0..=1.0).contains(&x) || n == 0 {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let nx = nf * x;
    let nxfl = nx.floor();
    let alpha = nx - nxfl;
    if nxfl == 0.0 || (nxfl == 1.0 && alpha == 0.0) {
        let cdf = x * (1.0 + x).powf(nf - 1.0);
        return 1.0 - cdf;
    }
    if -2.0 * nf * x * x < CEPHES_MINLOG {
        return 0.0;
    }
    if nxfl >= nf - 1.0 {
        return (1.0 - x).powf(nf);
    }
    if n > SMIRNOV_MAX_COMPUTE_N {
        let logp = -(6.0 * nx + 1.0).powi(2) / 18.0 / nf;
        return if logp < -std::f64::consts::LN_2 {
            logp.exp()
        } else {
            1.0 + logp.exp_m1()
        };
    }
    // j runs to n − ⌊nx⌋ − 1: the term where 1 − x − j/n reaches 0 (n·x an integer) is left
    // out, as SciPy does.
    let last = (nf - nxfl - 1.0) as u64;
    let ln_n_fact = ln_gamma(nf + 1.0);
    let mut sum = 0.0_f64;
    for j in 0..=last {
        let jf = j as f64;
        let base2 = (nf - jf) / nf - x;
        if base2 <= 0.0 {
            break;
        }
        let ln_c = ln_n_fact - ln_gamma(jf + 1.0) - ln_gamma(nf - jf + 1.0);
        let ln_term = ln_c + (nf - jf) * base2.ln() + (jf - 1.0) * (x + jf / nf).ln();
        let term = ln_term.exp();
        sum += term;
        if term != 0.0 && 4.0 * (last - j) as f64 * term < f64::EPSILON * sum && j != last {
            break;
        }
    }
    (x * sum).clamp(0.0, 1.0)
}

/// A small dense square matrix for Durbin's method.
struct Matrix {
    n: usize,
    data: Vec<f64>,
}

impl Matrix {
    fn zeros(n: usize) -> Self {
        Self {
            n,
            data: vec![0.0; n * n],
        }
    }

    fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n);
        for i in 0..n {
            m.set(i, i, 1.0);
        }
        m
    }

    fn get(&self, r: usize, c: usize) -> f64 {
        self.data.get(r * self.n + c).copied().unwrap_or(0.0)
    }

    fn set(&mut self, r: usize, c: usize, v: f64) {
        if let Some(slot) = self.data.get_mut(r * self.n + c) {
            *slot = v;
        }
    }

    fn scale(&mut self, by: f64) {
        for v in &mut self.data {
            *v *= by;
        }
    }

    fn mul(&self, other: &Self) -> Self {
        let n = self.n;
        let mut out = Self::zeros(n);
        for r in 0..n {
            for k in 0..n {
                let a = self.get(r, k);
                if a == 0.0 {
                    continue;
                }
                for c in 0..n {
                    let idx = r * n + c;
                    let add = a * other.get(k, c);
                    if let Some(slot) = out.data.get_mut(idx) {
                        *slot += add;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_numpys() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(3.4), 3.0);
    }

    #[test]
    fn an_empty_side_has_no_test() {
        assert!(ks_2samp(&[], &[1.0]).is_none());
    }

    #[test]
    fn identical_samples_do_not_differ() {
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        let r = ks_2samp(&a, &a).unwrap_or(KsResult {
            statistic: f64::NAN,
            pvalue: f64::NAN,
        });
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.pvalue, 1.0);
    }
}

// Pixel to sky through a FITS WCS given as cards (TAN or TAN-SIP), as
// the geometry route gives it. Pixels are 0-based array pixels, as in
// astropy's all_pix2world(x, y, 0). The projection is the gnomonic
// (zenithal) one of FITS WCS paper II, rotated to the sky with CRVAL
// and LONPOLE (paper I); SIP distortion is the forward polynomial of
// Shupe et al. (2005), applied before the linear transform.

const RAD = Math.PI / 180;

function card(cards, key, fallback) {
  const value = cards[key];
  return value === undefined ? fallback : Number(value);
}

// The linear transform of intermediate pixel offsets, as a 2x2 matrix.
function linearMatrix(cards) {
  if (cards.CD1_1 !== undefined) {
    return [
      card(cards, "CD1_1", 0), card(cards, "CD1_2", 0),
      card(cards, "CD2_1", 0), card(cards, "CD2_2", 0),
    ];
  }
  const c1 = card(cards, "CDELT1", 1);
  const c2 = card(cards, "CDELT2", 1);
  return [
    c1 * card(cards, "PC1_1", 1), c1 * card(cards, "PC1_2", 0),
    c2 * card(cards, "PC2_1", 0), c2 * card(cards, "PC2_2", 1),
  ];
}

function sipTerm(cards, prefix, u, v) {
  const order = card(cards, `${prefix}_ORDER`, 0);
  let sum = 0;
  for (let p = 0; p <= order; p += 1) {
    for (let q = 0; q <= order - p; q += 1) {
      const coefficient = cards[`${prefix}_${p}_${q}`];
      if (coefficient !== undefined) {
        sum += Number(coefficient) * u ** p * v ** q;
      }
    }
  }
  return sum;
}

export function isSupported(cards) {
  const ctype1 = String(cards.CTYPE1 || "");
  const ctype2 = String(cards.CTYPE2 || "");
  return ctype1.startsWith("RA---TAN") && ctype2.startsWith("DEC--TAN");
}

// Return [ra, dec] in degrees of array pixel (x, y).
export function pixToSky(cards, x, y) {
  if (!isSupported(cards)) {
    throw new Error(`unsupported projection ${cards.CTYPE1}/${cards.CTYPE2}`);
  }
  let u = x + 1 - card(cards, "CRPIX1", 0);
  let v = y + 1 - card(cards, "CRPIX2", 0);
  if (String(cards.CTYPE1).endsWith("-SIP")) {
    const du = sipTerm(cards, "A", u, v);
    const dv = sipTerm(cards, "B", u, v);
    u += du;
    v += dv;
  }
  const m = linearMatrix(cards);
  const xi = m[0] * u + m[1] * v; // degrees
  const eta = m[2] * u + m[3] * v;
  // Native spherical coordinates of the gnomonic projection.
  const phi = Math.atan2(xi, -eta);
  const theta = Math.atan2(1, Math.hypot(xi, eta) * RAD);
  const alphaP = card(cards, "CRVAL1", 0) * RAD;
  const deltaP = card(cards, "CRVAL2", 0) * RAD;
  const phiP = card(cards, "LONPOLE", 180) * RAD;
  const dphi = phi - phiP;
  const alpha = alphaP + Math.atan2(
    -Math.cos(theta) * Math.sin(dphi),
    Math.sin(theta) * Math.cos(deltaP)
      - Math.cos(theta) * Math.sin(deltaP) * Math.cos(dphi),
  );
  const delta = Math.asin(
    Math.sin(theta) * Math.sin(deltaP)
      + Math.cos(theta) * Math.cos(deltaP) * Math.cos(dphi),
  );
  const ra = ((alpha / RAD) % 360 + 360) % 360;
  return [ra, delta / RAD];
}

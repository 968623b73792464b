// Drawing the photo and the landmarks on a canvas, and finding the point under the pointer.
//
// Everything is drawn in image pixel space: the caller passes `scale` (canvas pixels per
// image pixel) and `cssPixel` (canvas pixels per CSS pixel, i.e. devicePixelRatio), so
// landmark coordinates are used exactly as returned while lines and dots keep a constant
// on-screen size whatever the zoom.


/** Points of a region as [[x, y], ...] from the response's [{X, Y}, ...]. */
function pointsOf(face, region) {
  const list = Array.isArray(face[region.name]) ? face[region.name] : [];
  return list.map((p) => [p.X, p.Y]);
}

function strokePath(ctx, points, closed, unit) {
  if (points.length < 2) return;
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  for (let i = 1; i < points.length; i++) ctx.lineTo(points[i][0], points[i][1]);
  if (closed) ctx.closePath();
  // A faint dark halo under the coloured line keeps it readable on light and dark skin alike.
  const color = ctx.strokeStyle;
  ctx.strokeStyle = "rgba(0,0,0,0.35)";
  ctx.lineWidth = 3 * unit;
  ctx.stroke();
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.2 * unit;
  ctx.stroke();
}

function fillDots(ctx, points, radius) {
  ctx.beginPath();
  for (const [x, y] of points) {
    ctx.moveTo(x + radius, y);
    ctx.arc(x, y, radius, 0, Math.PI * 2);
  }
  ctx.fill();
}

function drawRegion(ctx, face, region, unit) {
  const points = pointsOf(face, region);
  ctx.strokeStyle = region.color;
  ctx.fillStyle = region.color;
  ctx.globalAlpha = 0.8;
  if (region.shape === "pupil") {
    strokePath(ctx, points.slice(1), true, unit);
  } else if (region.shape !== "point") {
    // a region may be several polylines (the Nose: bridge, then alar contour)
    const cuts = [0, ...(region.pieces || []), points.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      strokePath(ctx, points.slice(cuts[i], cuts[i + 1]), region.shape === "closed", unit);
    }
  }
  ctx.globalAlpha = 1;
  fillDots(ctx, points, (region.count < 30 ? 2.4 : 1.6) * unit); // fewer points: larger dots
  if ((region.shape === "pupil" || region.shape === "point") && points.length) {
    // Centre: a larger dot with a dark ring so it stands out from the iris.
    ctx.lineWidth = unit;
    ctx.strokeStyle = "rgba(0,0,0,0.7)";
    ctx.beginPath();
    ctx.arc(points[0][0], points[0][1], 3 * unit, 0, Math.PI * 2);
    ctx.fill();
    ctx.stroke();
  }
  return points.length;
}

/** The face's box: the response's (AnalyzeDenseLandmarks), else the box of its points (AnalyzeFace). */
export function boxOf(face, regions) {
  if (Number.isFinite(face.Width)) return { X: face.X, Y: face.Y, Width: face.Width, Height: face.Height };
  const points = regions.flatMap((r) => face[r.name] || []);
  if (!points.length) return null;
  const xs = points.map((p) => p.X);
  const ys = points.map((p) => p.Y);
  const X = Math.min(...xs);
  const Y = Math.min(...ys);
  return { X, Y, Width: Math.max(...xs) - X, Height: Math.max(...ys) - Y };
}

function drawBox(ctx, face, index, unit) {
  ctx.lineWidth = 3 * unit;
  ctx.strokeStyle = "rgba(0,0,0,0.55)";
  ctx.strokeRect(face.X, face.Y, face.Width, face.Height);
  ctx.lineWidth = 1.5 * unit;
  ctx.strokeStyle = "#ffffff";
  ctx.strokeRect(face.X, face.Y, face.Width, face.Height);

  const label = `Face ${index + 1}`;
  ctx.font = `600 ${12 * unit}px system-ui, sans-serif`;
  const padX = 5 * unit;
  const h = 18 * unit;
  const w = ctx.measureText(label).width + 2 * padX;
  const y = face.Y - h >= 0 ? face.Y - h : face.Y;
  ctx.fillStyle = "rgba(17,24,39,0.85)";
  ctx.fillRect(face.X, y, w, h);
  ctx.fillStyle = "#ffffff";
  ctx.textBaseline = "middle";
  ctx.fillText(label, face.X + padX, y + h / 2);
}

/**
 * Draw the photo and the overlay.
 * @param {CanvasRenderingContext2D} ctx
 * @param {object} o
 * @param {CanvasImageSource|null} o.image   drawn stretched to width x height (image pixels)
 * @param {number} o.width, o.height         the image size in pixels (the coordinate space)
 * @param {Array} o.faces                    DenseFaceShapeSet or FaceShapeSet
 * @param {Array} o.regions                  the action's regions, in drawing order
 * @param {Set<string>} o.hidden             names of hidden regions
 * @param {boolean} o.boxes                  draw face boxes
 * @param {number} o.scale                   canvas pixels per image pixel
 * @param {number} o.cssPixel                canvas pixels per CSS pixel
 * @returns {number} the number of landmark points drawn
 */
export function render(ctx, { image, width, height, faces, regions, hidden, boxes, scale, cssPixel }) {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.lineJoin = "round";
  ctx.lineCap = "round";
  if (image) {
    ctx.drawImage(image, 0, 0, width, height);
  } else {
    ctx.fillStyle = "#1f2937";
    ctx.fillRect(0, 0, width, height);
  }
  const unit = cssPixel / scale; // one CSS pixel, in image pixels
  let drawn = 0;
  faces.forEach((face, index) => {
    const box = boxes ? boxOf(face, regions) : null;
    if (box) drawBox(ctx, box, index, unit);
    for (const region of regions) {
      if (!hidden.has(region.name)) drawn += drawRegion(ctx, face, region, unit);
    }
  });
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  return drawn;
}

/**
 * The visible landmark nearest to (x, y) in image pixels, within maxDistance image pixels.
 * @returns {{face:number, region:string, index:number, X:number, Y:number}|null}
 */
export function nearestPoint(faces, regions, hidden, x, y, maxDistance) {
  let best = null;
  let bestDistance = maxDistance * maxDistance;
  faces.forEach((face, faceIndex) => {
    for (const region of regions) {
      if (hidden.has(region.name)) continue;
      (face[region.name] || []).forEach((p, index) => {
        const d = (p.X - x) ** 2 + (p.Y - y) ** 2;
        if (d <= bestDistance) {
          bestDistance = d;
          best = { face: faceIndex, region: region.name, index, X: p.X, Y: p.Y };
        }
      });
    }
  });
  return best;
}

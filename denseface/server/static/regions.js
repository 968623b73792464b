// The regions of the two actions' faces, in response order: AnalyzeDenseLandmarks (888 points in 14
// regions) and AnalyzeFace (90 points in 9), and what the page needs to know of each action.
//
// shape: "closed" = a closed contour, "open" = an open polyline,
//        "pupil"  = point 0 is the centre, points 1..31 a closed iris circle, "point" = one point;
// pieces: indices where a region's points start a new polyline.
// "Left" / "Right" follow Tencent: the side of the *image*, not of the person.

export const REGIONS = [
  { name: "LeftEye", count: 64, shape: "closed", color: "#38bdf8",
    order: "Eye on the image's left. Starts at the outer corner and runs around the lid margin." },
  { name: "RightEye", count: 64, shape: "closed", color: "#818cf8",
    order: "Eye on the image's right. Starts at its outer corner." },
  { name: "LeftEyeBrow", count: 64, shape: "closed", color: "#a3e635",
    order: "Outline of the image-left brow, starting at its outer end." },
  { name: "RightEyeBrow", count: 64, shape: "closed", color: "#22c55e",
    order: "Outline of the image-right brow, starting at its outer end." },
  { name: "MouthOutside", count: 64, shape: "closed", color: "#f43f5e",
    order: "Outer lip contour, from the image-left mouth corner, counterclockwise." },
  { name: "MouthInside", count: 64, shape: "closed", color: "#fda4af",
    order: "Inner lip contour, from the image-left mouth corner, counterclockwise." },
  { name: "Nose", count: 64, shape: "open", color: "#c084fc", pieces: [24],
    order: "Two open lines: points 0–23 the bridge from between the eyes to the tip; 24–63 the alar contour and nostril base, image-left to image-right." },
  { name: "LeftPupil", count: 32, shape: "pupil", color: "#f472b6",
    order: "Point 0 is the pupil centre; 1–31 trace the iris circle clockwise from the top." },
  { name: "RightPupil", count: 32, shape: "pupil", color: "#fb923c",
    order: "Point 0 is the pupil centre; 1–31 trace the iris circle clockwise from the top." },
  { name: "CentralAxis", count: 32, shape: "open", color: "#f8fafc",
    order: "Face midline, from the forehead above the brows down to the chin." },
  { name: "Chin", count: 160, shape: "open", color: "#facc15",
    order: "Face contour, from the image-left side at eye level, down around the chin, up to the image-right side." },
  { name: "LeftEyeBags", count: 32, shape: "closed", color: "#2dd4bf",
    order: "Under-eye area of the image-left eye, starting near its inner part." },
  { name: "RightEyeBags", count: 32, shape: "closed", color: "#67e8f9",
    order: "Under-eye area of the image-right eye, starting near its inner part." },
  { name: "Forehead", count: 120, shape: "closed", color: "#fdba74",
    order: "Outline from the image-left side at eye level, up over the forehead, to the image-right side." },
];

// Drawing order: wide outlines first, so eyes, brows and lips stay on top of them.
const UNDERNEATH = new Set(["Forehead", "Chin", "CentralAxis", "LeftEyeBags", "RightEyeBags"]);
export const DRAW_ORDER = [
  ...REGIONS.filter((r) => UNDERNEATH.has(r.name)),
  ...REGIONS.filter((r) => !UNDERNEATH.has(r.name)),
];

export const POINTS_PER_FACE = REGIONS.reduce((sum, r) => sum + r.count, 0); // 888

export const REGION_BY_NAME = Object.fromEntries(REGIONS.map((r) => [r.name, r]));

// AnalyzeFace's FaceShape (denseface/data/shape90.json), in the colours of the 888 regions it comes from.
const COLOR = Object.fromEntries(REGIONS.map((r) => [r.name, r.color]));
export const SHAPE90 = [
  { name: "FaceProfile", count: 21, shape: "open", color: COLOR.Chin,
    order: "Face contour from the image-left side at eye level, down the jaw (10 = the chin), up to the image-right side." },
  { name: "LeftEye", count: 8, shape: "closed", color: COLOR.LeftEye,
    order: "0 outer corner, 1–3 lower lid, 4 inner corner, 5–7 upper lid back outward." },
  { name: "RightEye", count: 8, shape: "closed", color: COLOR.RightEye,
    order: "The mirror: 0 its outer corner (image right), 1–3 lower lid, 4 inner corner, 5–7 upper lid." },
  { name: "LeftEyeBrow", count: 8, shape: "closed", color: COLOR.LeftEyeBrow,
    order: "0 outer end, 1–3 lower edge, 4 inner end, 5–7 upper edge back outward." },
  { name: "RightEyeBrow", count: 8, shape: "closed", color: COLOR.RightEyeBrow,
    order: "The mirror of LeftEyeBrow, from its outer end (image right)." },
  { name: "Mouth", count: 22, shape: "closed", color: COLOR.MouthOutside, pieces: [12],
    order: "0 left corner, 1–5 outer lower lip, 6 right corner, 7–11 outer upper lip; 12–16 inner lower, 17–21 inner upper lip." },
  { name: "Nose", count: 13, shape: "open", color: COLOR.Nose, pieces: [1],
    order: "0 tip, 1 top of the bridge, 2–5 image-left side down to the wing, 6–8 base (7 subnasale), 9 right wing, 10–12 up the right side." },
  { name: "LeftPupil", count: 1, shape: "point", color: COLOR.LeftPupil, order: "The pupil centre." },
  { name: "RightPupil", count: 1, shape: "point", color: COLOR.RightPupil, order: "The pupil centre." },
];

// What the page calls: the response's list of faces, Mode 0's face limit, regions and drawing order.
export const ACTIONS = {
  AnalyzeDenseLandmarks: {
    name: "AnalyzeDenseLandmarks", setField: "DenseFaceShapeSet", maxFaces: 5, regions: REGIONS,
    drawOrder: DRAW_ORDER, pointsPerFace: POINTS_PER_FACE,
  },
  AnalyzeFace: {
    name: "AnalyzeFace", setField: "FaceShapeSet", maxFaces: 10, regions: SHAPE90, drawOrder: SHAPE90,
    pointsPerFace: SHAPE90.reduce((sum, r) => sum + r.count, 0), // 90
  },
};

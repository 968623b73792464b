// Plain-words explanations for Tencent Cloud error codes (and a few client-side ones).

const EXPLANATIONS = {
  // Business errors of AnalyzeDenseLandmarks (denseface/errors.py).
  "InvalidParameterValue.NoFaceInPhoto": "No face found in this photo.",
  "FailedOperation.FaceSizeTooSmall": "The faces in this photo are too small to analyse. Try a closer or larger photo.",
  "FailedOperation.ImageDecodeFailed": "This image format is not supported or the file is damaged.",
  "FailedOperation.ImageSizeExceed": "The image file is too large (over 5 MB once base64-encoded). Use a smaller or more compressed photo.",
  "FailedOperation.ImageResolutionExceed": "The image has too many pixels. Resize it and try again.",
  "FailedOperation.ImageResolutionTooSmall": "The image is too small: its short side must be at least 64 pixels.",
  "FailedOperation.ImageDownloadError": "The server could not download the image from that URL.",
  "InvalidParameterValue.ImageEmpty": "No image was sent. Choose, drop or paste a photo, or enter a URL.",
  "InvalidParameterValue.UrlIllegal": "That URL is not valid, or its scheme or address is not allowed by the server.",
  "InvalidParameterValue.FaceModelVersionIllegal": "Only FaceModelVersion 3.0 is supported.",
  "FailedOperation.ServerError": "The model run failed on the server. This is usually temporary: try again.",
  "InternalError": "The server hit an internal error (for example, the model files are missing). See the server log.",
  "FailedOperation": "The server could not complete the analysis.",
  // Authentication (common codes).
  "AuthFailure.SignatureFailure": "The signature does not match: the SecretKey is probably wrong.",
  "AuthFailure.SecretIdNotFound": "The server does not know this SecretId.",
  "AuthFailure.InvalidSecretId": "The SecretId is not valid.",
  "AuthFailure.SignatureExpire": "The request time is more than 5 minutes away from the server's clock. Check this computer's clock.",
  "AuthFailure.InvalidAuthorization": "The Authorization header is malformed.",
  "AuthFailure.TokenFailure": "The temporary security token is invalid or expired.",
  "AuthFailure.MFAFailure": "Multi-factor authentication failed.",
  "AuthFailure.UnauthorizedOperation": "This key is not allowed to call this action.",
  "AuthFailure": "Authentication failed. Check the SecretId and SecretKey.",
  "UnauthorizedOperation": "This key is not allowed to call this action.",
  // Request shape and limits (common codes).
  "MissingParameter": "The request is missing a required parameter.",
  "InvalidParameter": "A request parameter has the wrong format or type.",
  "InvalidParameter.InvalidParameter": "A parameter has the wrong type (Mode and NeedRotateDetection are integers; Image and Url are strings).",
  "InvalidParameterValue": "A request parameter has an invalid value.",
  "UnknownParameter": "The request contains a parameter the server does not know.",
  "InvalidAction": "The server does not support this action.",
  "ActionOffline": "This action is no longer offered.",
  "NoSuchVersion": "The API version is not supported (use 2018-03-01 or 2020-03-03).",
  "NoSuchProduct": "The server does not offer this product.",
  "UnsupportedRegion": "The region is not supported.",
  "UnsupportedProtocol": "The server only accepts GET and POST requests.",
  "UnsupportedOperation": "This operation is not supported.",
  "UnsupportedOperation.UnknowMethod": "This server does not implement that action; it implements AnalyzeDenseLandmarks.",
  "InvalidRequest": "The request body could not be parsed.",
  "RequestSizeLimitExceeded": "The request is too large (TC3 POST requests are limited to 10 MB).",
  "ResponseSizeLimitExceeded": "The response would be too large.",
  "RequestLimitExceeded": "Too many requests. Wait a moment and try again.",
  "LimitExceeded": "A limit was exceeded. Wait a moment and try again.",
  "ServiceUnavailable": "The service is temporarily unavailable. Try again shortly.",
  "ResourceUnavailable": "A resource needed for the analysis is unavailable.",
  "ResourceInsufficient": "The server does not have enough resources right now.",
  "IpInBlacklist": "Requests from this IP address are blocked.",
  "IpNotInWhitelist": "This IP address is not on the server's allow list.",
  // Raised by the page itself, never by the server.
  "Client.MissingCredentials": "Enter a SecretId and SecretKey first (the link printed by `make run` fills them in).",
  "Client.NoImage": "Choose, drop or paste a photo, or enter an image URL.",
  "Client.NetworkError": "Could not reach the server. Is `denseface serve` still running?",
  "Client.BadResponse": "The server's answer was not a Tencent-style JSON response.",
  "Client.ReadFailed": "The file could not be read.",
};

/** Plain-words explanation for a code: exact match, else the nearest dotted prefix. */
export function explain(code) {
  let key = code || "";
  while (key) {
    if (EXPLANATIONS[key]) return EXPLANATIONS[key];
    const dot = key.lastIndexOf(".");
    key = dot > 0 ? key.slice(0, dot) : "";
  }
  return "The request failed.";
}

/** The two paragraphs that show an error: its code (and message), then the plain-words explanation. */
export function errorParagraphs(code, message) {
  const head = document.createElement("p");
  const strong = document.createElement("strong");
  strong.className = "code";
  strong.textContent = code;
  head.append(strong, document.createTextNode(message ? ` ${message}` : ""));
  const plain = document.createElement("p");
  plain.className = "plain";
  plain.textContent = explain(code);
  return [head, plain];
}

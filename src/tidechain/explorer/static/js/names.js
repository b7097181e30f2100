// Member names for keys: a key shown on a page is replaced by the member's name and
// organisation once the node answers /v1/apps/members/member for it (admins and the
// regulator read every member; others their own record, so for them most keys stay
// keys). Remembered per identity, a bounded number of them.

import { apiPath, currentSigner, getJSON, onIdentity } from "./api.js";

const MAX_NAMES = 1000; // more distinct keys than any page shows
const names = new Map(); // key hex -> Promise<{name, org} | null>

onIdentity(() => names.clear());

/** The member record's {name, org} for `key`, or null when it cannot be read. */
export function memberName(key) {
  if (!currentSigner()) return Promise.resolve(null); // anonymous: members-only
  if (!names.has(key)) {
    if (names.size >= MAX_NAMES) names.delete(names.keys().next().value);
    names.set(key, getJSON(apiPath("/v1/apps/members/member", { key }))
      .then((m) => ({ name: m.name, org: m.org }), () => null));
  }
  return names.get(key);
}

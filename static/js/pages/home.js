// @ts-check
/** Landing page: only the header's login state is dynamic. */
import { whoami } from "../ui.js";

whoami().catch(() => undefined);

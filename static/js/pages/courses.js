// @ts-check
/** Catalog page: search, filter, sort and page through published courses. */
import { api } from "../api.js";
import { $, CATEGORY, DELIVERY, h, say, sayError, whoami } from "../ui.js";

const PAGE_SIZE = 20;
const form = /** @type {HTMLFormElement} */ ($("#filters"));
const params = new URLSearchParams(location.search);
let page = Number(params.get("page") || "1") || 1;
for (const name of ["q", "category", "delivery", "sort"]) {
  const input = /** @type {HTMLInputElement | null} */ (form.elements.namedItem(name));
  if (input && params.get(name)) input.value = params.get(name) || "";
}

/** @param {any} course */
function item(course) {
  return h("li", {}, [
    h("h3", {}, [h("a", { href: `/courses/${course.id}` }, [course.title])]),
    h("div", { class: "meta" }, [
      h("span", { class: "tag" }, [CATEGORY[course.category] || course.category]),
      h("span", {}, [DELIVERY[course.delivery] || course.delivery]),
      h("span", {}, [`${course.credit_hours} 学时`]),
      h("span", {}, [course.provider_name || course.provider?.name || ""]),
    ]),
  ]);
}

async function load() {
  const data = new FormData(form);
  const query = new URLSearchParams();
  for (const [k, v] of data.entries()) if (String(v).trim()) query.set(k, String(v).trim());
  query.set("page", String(page));
  query.set("page_size", String(PAGE_SIZE));
  history.replaceState(null, "", `/courses?${query}`);
  say("正在加载…");
  try {
    const res = await api("GET", `/api/courses?${query}`);
    const list = $("#courses");
    list.replaceChildren(...res.items.map(item));
    $("#count").textContent = `共 ${res.total} 门课程`;
    const pages = Math.max(1, Math.ceil(res.total / PAGE_SIZE));
    $("#page").textContent = `第 ${page} / ${pages} 页`;
    /** @type {HTMLButtonElement} */ ($("#prev")).disabled = page <= 1;
    /** @type {HTMLButtonElement} */ ($("#next")).disabled = page >= pages;
    say(res.items.length ? "" : "没有找到符合条件的课程。");
  } catch (err) {
    sayError(err);
  }
}

/** @type {number | undefined} */
let timer;
form.addEventListener("input", () => {
  clearTimeout(timer);
  timer = window.setTimeout(() => { page = 1; load(); }, 250);
});
form.addEventListener("submit", (ev) => { ev.preventDefault(); page = 1; load(); });
$("#prev").addEventListener("click", () => { page -= 1; load(); });
$("#next").addEventListener("click", () => { page += 1; load(); });
whoami().catch(() => undefined);
load();

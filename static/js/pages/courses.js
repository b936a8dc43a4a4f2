// @ts-check
/** Catalog page: search, filter, sort and page through published courses; the URL keeps the state. */
import { api } from "../api.js";
import { $, CATEGORY, DELIVERY, h, say, sayError, when, whoami } from "../ui.js";

const PAGE_SIZE = 20;
const FILTERS = ["q", "category", "delivery", "sort"];
const form = /** @type {HTMLFormElement} */ ($("#filters"));
const list = $("#courses");
const prev = /** @type {HTMLButtonElement} */ ($("#prev"));
const nextBtn = /** @type {HTMLButtonElement} */ ($("#next"));
const params = new URLSearchParams(location.search);
let page = Math.max(1, Number(params.get("page") || "1") || 1);
for (const name of FILTERS) {
  const input = /** @type {HTMLInputElement | HTMLSelectElement | null} */ (form.elements.namedItem(name));
  if (input && params.get(name)) input.value = params.get(name) || "";
}
// Answers can arrive out of order while the learner types: only the latest request may paint.
let latest = 0;

/** @param {any} course */
function item(course) {
  const meta = [
    h("span", { class: "tag" }, [CATEGORY[course.category] || course.category]),
    h("span", {}, [DELIVERY[course.delivery] || course.delivery]),
    h("span", {}, [`${course.credit_hours} 学时`]),
  ];
  if (course.next_session_start) meta.push(h("span", {}, [`开课：${when(course.next_session_start)}`]));
  const children = [
    h("h3", {}, [h("a", { href: `/courses/${course.id}` }, [course.title])]),
    h("div", { class: "meta" }, meta),
  ];
  if (course.provider_name) children.push(h("div", { class: "meta" }, [course.provider_name]));
  return h("li", {}, children);
}

async function load() {
  const ticket = ++latest;
  const query = new URLSearchParams();
  for (const [k, v] of new FormData(form).entries()) if (String(v).trim()) query.set(k, String(v).trim());
  if (page > 1) query.set("page", String(page));
  history.replaceState(null, "", query.toString() ? `/courses?${query}` : "/courses");
  query.set("page", String(page));
  query.set("page_size", String(PAGE_SIZE));
  list.setAttribute("aria-busy", "true");
  say("正在加载…");
  try {
    const res = await api("GET", `/api/courses?${query}`);
    if (ticket !== latest) return;
    list.replaceChildren(...res.items.map(item));
    const pages = Math.max(1, Math.ceil(res.total / PAGE_SIZE));
    $("#count").textContent = `共 ${res.total}${res.total_is_lower_bound ? "+" : ""} 门课程`;
    $("#page").textContent = `第 ${page} / ${pages} 页`;
    prev.disabled = page <= 1;
    nextBtn.disabled = page >= pages;
    $(".pager").hidden = pages <= 1;
    say(res.items.length ? "" : "没有找到符合条件的课程，换个关键词试试。");
  } catch (err) {
    if (ticket === latest) sayError(err);
  } finally {
    if (ticket === latest) list.removeAttribute("aria-busy");
  }
}

/** @type {number | undefined} */
let timer;
// A course opened while a search still waits to run: the search must not run, or its
// history.replaceState would abort the navigation to the course (the HTML standard aborts an ongoing
// navigation on a same-document one), leaving a fast typist on the list.
document.addEventListener(
  "click",
  (ev) => {
    if (ev.target instanceof Element && ev.target.closest("a[href]")) clearTimeout(timer);
  },
  true,
);
form.addEventListener("input", () => {
  clearTimeout(timer);
  timer = window.setTimeout(() => {
    page = 1;
    load();
  }, 250);
});
form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  clearTimeout(timer);
  page = 1;
  load();
});
prev.addEventListener("click", () => {
  page -= 1;
  load();
});
nextBtn.addEventListener("click", () => {
  page += 1;
  load();
});
whoami().catch(() => undefined);
load();

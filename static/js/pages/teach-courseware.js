// @ts-check
/** 我的课件: an expert creates courseware, uploads versions (a video, optionally slides as PDF) with their
 * progress, follows each version's check and review (state, the reviewers' comments), and submits a
 * ready version to the CE association's review. */
import { api } from "../api.js";
import { playRendition, reviewLines, slidesLink, stateBadge, versionMeta } from "../courseware-ui.js";
import { upload } from "../uploader.js";
import { $, busy, CATEGORY, h, hasRole, requireLogin, say, sayError } from "../ui.js";

const POLL_MS = 3000; // while a version is being checked and rendered, the list is read again this often
/** @type {number | undefined} */
let pollTimer;

/**
 * Upload one file with its progress shown in `box`; resolves with the completed upload's id.
 * @param {File} file
 * @param {string} label e.g. "视频"
 * @param {HTMLElement} box
 * @returns {Promise<number>}
 */
async function send(file, label, box) {
  const bar = /** @type {HTMLProgressElement} */ (h("progress", { max: "100", value: "0" }));
  const text = h("span", { class: "upload-text" }, [`${label}：准备上传…`]);
  box.append(h("div", { class: "upload-progress", "data-file": label }, [text, bar]));
  const done = await upload(file, {
    onProgress(/** @type {number} */ sent, /** @type {number} */ total) {
      const share = total > 0 ? Math.floor((sent / total) * 100) : 100;
      bar.value = share;
      text.textContent = `${label}：已上传 ${share}%`;
    },
  });
  bar.value = 100;
  text.textContent = `${label}：上传完成`;
  return done.id;
}

/**
 * The form that uploads a new version of courseware `cw`.
 * @param {any} cw
 */
function uploadForm(cw) {
  const video = /** @type {HTMLInputElement} */ (h("input", { type: "file", name: "video", accept: "video/*", required: "" }));
  const slides = /** @type {HTMLInputElement} */ (h("input", { type: "file", name: "slides", accept: "application/pdf,.pdf" }));
  const progress = h("div", { class: "stack" });
  const submit = /** @type {HTMLButtonElement} */ (h("button", { class: "button primary", type: "submit" }, ["上传"]));
  const form = h("form", { class: "stack upload-form" }, [
    h("label", {}, ["视频文件", video]),
    h("label", {}, ["讲义（PDF，可选）", slides]),
    submit,
    progress,
  ]);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = video.files?.[0];
    if (!file) {
      say("请选择要上传的视频文件。", "error");
      return;
    }
    const restore = busy(submit, "正在上传…");
    progress.replaceChildren();
    try {
      const uploadId = await send(file, "视频", progress);
      const pdf = slides.files?.[0];
      const slidesId = pdf ? await send(pdf, "讲义", progress) : null;
      await api("POST", `/api/courseware/${cw.id}/versions`, { upload_id: uploadId, slides_upload_id: slidesId });
      say("上传完成，正在检查和转码，完成后即可提交审核。", "ok");
      await load();
    } catch (err) {
      sayError(err);
    } finally {
      restore();
    }
  });
  return form;
}

/**
 * One version: its state, processing, reviews with comments, and what the owner may do.
 * @param {any} v
 */
function versionItem(v) {
  const actions = h("div", { class: "actions" });
  if (v.review_state === "draft" && v.processing === "ready" && v.media_kind === "video") {
    const submit = /** @type {HTMLButtonElement} */ (h("button", { class: "button primary", type: "button" }, ["提交审核"]));
    submit.addEventListener("click", async () => {
      const restore = busy(submit, "正在提交…");
      try {
        await api("POST", `/api/courseware/versions/${v.id}/submit`);
        say("已提交继续教育协会审核。", "ok");
        await load();
      } catch (err) {
        sayError(err);
        restore();
      }
    });
    actions.append(submit);
  }
  const item = h("li", { "data-version": String(v.id), "data-state": v.review_state, "data-processing": v.processing }, [
    h("h4", {}, [`第 ${v.version} 版 `, stateBadge(v.review_state)]),
    versionMeta(v),
    ...(v.processing === "failed" && v.check_error ? [h("p", { class: "message error" }, [`检查未通过：${v.check_error.split(" / ")[0]}`])] : []),
    ...reviewLines(v.reviews),
    actions,
  ]);
  if (v.recording_id && v.processing === "ready") {
    const watch = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, ["预览视频"]));
    watch.addEventListener("click", async () => {
      const player = /** @type {HTMLVideoElement} */ (h("video", { controls: "", playsinline: "", preload: "metadata" }));
      watch.replaceWith(player);
      try {
        await playRendition(player, v.recording_id);
      } catch (err) {
        sayError(err);
      }
    });
    actions.append(watch);
  }
  if (v.has_slides && v.processing === "ready") {
    const read = /** @type {HTMLButtonElement} */ (h("button", { class: "button", type: "button" }, ["查看讲义"]));
    read.addEventListener("click", async () => {
      try {
        read.replaceWith(await slidesLink(v.id));
      } catch (err) {
        sayError(err);
      }
    });
    actions.append(read);
  }
  return item;
}

/**
 * Edit title, category, description (they reach learners with the next approval).
 * @param {any} cw
 */
function editForm(cw) {
  const form = h("form", { class: "stack" }, [
    h("label", {}, ["课件名称", h("input", { name: "title", required: "", maxlength: "200", value: cw.title })]),
    h("label", {}, ["科目类别", h("select", { name: "category" }, Object.entries(CATEGORY).map(([value, text]) =>
      h("option", value === cw.category ? { value, selected: "" } : { value }, [text])))]),
    h("label", {}, ["简介", h("textarea", { name: "description", maxlength: "10000", rows: "3" }, [cw.description || ""])]),
    h("button", { class: "button", type: "submit" }, ["保存"]),
  ]);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(/** @type {HTMLFormElement} */ (form));
    try {
      await api("PATCH", `/api/courseware/${cw.id}`, {
        title: String(data.get("title") || ""),
        category: String(data.get("category") || ""),
        description: String(data.get("description") || ""),
      });
      say("已保存。已共享的课程在下一次审核通过后显示新的名称和简介。", "ok");
      await load();
    } catch (err) {
      sayError(err);
    }
  });
  return form;
}

/** @param {any} cw */
function coursewareItem(cw) {
  const meta = [h("span", { class: "tag" }, [CATEGORY[cw.category] || cw.category])];
  if (cw.course_id && cw.course_status === "published") {
    meta.push(h("a", { href: `/courses/${cw.course_id}` }, [`已共享：查看课程（第 ${cw.approved_version} 版）`]));
  } else if (cw.course_id) {
    meta.push(h("span", {}, ["课程已下架"]));
  }
  return h("li", { "data-courseware": String(cw.id) }, [
    h("h3", {}, [cw.title]),
    h("div", { class: "meta" }, meta),
    ...(cw.description ? [h("p", {}, [cw.description])] : []),
    h("ul", { class: "versions" }, cw.versions.length ? cw.versions.map(versionItem) : [h("li", { class: "empty" }, ["还没有上传版本。"])]),
    // Open at once for courseware with nothing uploaded yet: that is the next step.
    h("details", cw.versions.length ? { class: "upload-box" } : { class: "upload-box", open: "" }, [
      h("summary", {}, ["上传新版本"]),
      uploadForm(cw),
    ]),
    h("details", {}, [h("summary", {}, ["修改名称和简介"]), editForm(cw)]),
  ]);
}

async function load() {
  const res = await api("GET", "/api/courseware");
  const items = res.items || [];
  $("#courseware").replaceChildren(...(items.length ? items.map(coursewareItem) : [h("li", { class: "empty" }, ["还没有课件：先新建一个。"])]));
  // Versions being checked and rendered change state by themselves: look again until they are done.
  const waiting = items.some((/** @type {any} */ cw) => cw.versions.some((/** @type {any} */ v) => v.processing === "processing" || v.processing === "uploading"));
  window.clearTimeout(pollTimer);
  if (waiting) pollTimer = window.setTimeout(() => load().catch(sayError), POLL_MS);
}

async function start() {
  const me = await requireLogin();
  if (!me) return;
  if (!hasRole(me, "expert")) {
    say("只有授课专家可以上传共享课件。", "error");
    $("#new-box").hidden = true;
    return;
  }
  const form = /** @type {HTMLFormElement} */ ($("#new"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const button = /** @type {HTMLButtonElement} */ (form.querySelector("button"));
    const restore = busy(button, "正在创建…");
    try {
      await api("POST", "/api/courseware", {
        title: String(data.get("title") || ""),
        category: String(data.get("category") || ""),
        description: String(data.get("description") || ""),
      });
      form.reset();
      say("已创建，请上传视频。", "ok");
      await load();
    } catch (err) {
      sayError(err);
    } finally {
      restore();
    }
  });
  try {
    await load();
  } catch (err) {
    sayError(err);
  }
}
start();

// @ts-check
/** 待核查: fraud and anomaly flags with their evidence; the provider's admins (and admins) resolve them. */
import { api } from "../api.js";
import { $, busy, h, hasRole, requireLogin, say, sayError, when } from "../ui.js";

/** @type {Record<string, string>} */
const CODE = {
  auto_confirm: "签到应答过快（疑似脚本）",
  two_devices: "两台设备同时学习",
  double_claim: "同一内容重复申报",
  overlap: "不同课程时间重叠",
  after_end: "课次结束后仍有学习记录",
  too_fast: "播放速度超过允许倍速",
  forward_seek: "首次观看时跳过内容",
  forged_heartbeat: "心跳数据异常",
  daily_cap: "超过每日学时上限",
  low_trust: "外部平台数据可信度低（需核实）",
  reciprocal_mentorship: "师承带徒：双方互为导师",
  backdated_mentorship: "师承带徒：协议补签或期满后确认",
  approval_too_fast: "学时发布后过快审核通过（单位审核）",
  approval_bulk: "一次批量通过的学时过多（单位审核）",
};
/** @type {Record<string, string>} */
const STATUS = { open: "待处理", confirmed: "属实", dismissed: "已排除" };
/** @type {Record<string, string>} */
const SEVERITY = { info: "提示", low: "轻微", medium: "一般", warning: "警告", high: "严重" };

/**
 * @param {any} f
 * @param {boolean} canResolve
 * @param {() => void} reload
 */
function flagItem(f, canResolve, reload) {
  const evidence = h("pre", { class: "evidence" }, [JSON.stringify(f.evidence, null, 2)]);
  const parts = [
    h("h3", {}, [CODE[f.code] || f.code, " ", h("span", { class: "badge" }, [STATUS[f.status] || f.status])]),
    h("div", { class: "meta" }, [
      h("span", {}, [`学员 ${f.name}（${f.phone}）`]),
      h("span", {}, [f.course_title ? `课程 ${f.course_title}` : ""]),
      h("span", {}, [f.session_title ? `课次 ${f.session_title}` : ""]),
      h("span", {}, [`级别 ${SEVERITY[f.severity] || f.severity}`]),
      h("span", {}, [`发现于 ${when(f.created_at)}`]),
    ]),
    h("details", {}, [h("summary", {}, ["证据"]), evidence]),
  ];
  if (f.status !== "open") parts.push(h("p", { class: "meta" }, [`处理结论：${f.resolution}`]));
  if (f.status === "open" && canResolve) {
    const reason = h("input", { name: "resolution", maxlength: "1000", placeholder: "核查结论（必填）" });
    const form = h("form", { class: "actions" }, [
      reason,
      h("button", { class: "button", type: "submit", value: "confirmed" }, ["属实"]),
      h("button", { class: "button", type: "submit", value: "dismissed" }, ["排除"]),
    ]);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = /** @type {HTMLButtonElement} */ (/** @type {SubmitEvent} */ (ev).submitter);
      const text = /** @type {HTMLInputElement} */ (reason).value.trim();
      if (!text) {
        say("请填写核查结论。", "error");
        return;
      }
      const done = busy(button, "正在提交…");
      try {
        await api("POST", `/api/fraud-flags/${f.id}/resolve`, { status: button.value, resolution: text });
        say("已处理。", "ok");
        reload();
      } catch (err) {
        sayError(err);
      } finally {
        done();
      }
    });
    parts.push(form);
  }
  return h("li", { "data-flag": String(f.id) }, parts);
}

async function init() {
  const me = await requireLogin();
  if (!me) return;
  if (!["provider_admin", "bureau", "admin"].some((r) => hasRole(me, r))) {
    say("只有机构管理员、人社部门和系统管理员可以查看待核查列表。", "error");
    return;
  }
  const canResolve = hasRole(me, "provider_admin") || hasRole(me, "admin");
  const select = /** @type {HTMLSelectElement} */ ($("#status"));
  const load = async () => {
    const data = await api("GET", `/api/fraud-flags?status=${select.value}`);
    const reload = () => { load().catch((err) => sayError(err)); };
    $("#flags").replaceChildren(...(data.items.length ? data.items.map((/** @type {any} */ f) => flagItem(f, canResolve, reload)) : [h("li", { class: "empty" }, ["没有需要核查的记录。"])]));
  };
  select.addEventListener("change", () => { load().catch((err) => sayError(err)); });
  await load();
}

init().catch((err) => sayError(err));

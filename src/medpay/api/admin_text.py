"""The words of the admin door's policy pages, zh-CN first and English; the pages' script gets them as one JSON
block (as the mobile pages do), so every message has one place."""

from __future__ import annotations

from typing import Any

TEXT: dict[str, dict[str, Any]] = {
    "zh": {
        "html_lang": "zh-CN", "app": "医保经办", "other_lang": "English", "other_lang_name": "en",
        "switch_label": "Switch to English",
        "policies_title": "在用政策", "policy_title": "政策详情", "back": "全部政策",
        "key_legend": "经办人员密钥",
        "key_intro": "输入经办人员密钥（mpk_…）。密钥只保存在本标签页（sessionStorage），随请求头发送，不会出现在网址中；"
                     "关闭标签页即清除。",
        "key_label": "密钥", "key_button": "登录", "sign_out": "退出",
        "loading": "正在加载…", "region": "医保区划", "name": "名称", "version": "版本", "effective": "有效期",
        "tiers": "支付档", "source": "来源", "references": "依据文件", "general": "一般设置",
        "examples": "算例", "no_examples": "本政策文件没有算例。", "no_references": "未列出依据文件。",
        "field": "项目", "expected": "应为", "computed": "实为", "passed": "通过", "failed": "不符",
        "example_error": "算例无法结算：{error}", "note": "说明",
        "errors": {"auth": "密钥无效或已撤销，请重新输入。", "not_found": "没有这个政策：{id}",
                   "network": "无法连接服务器，请稍后再试。", "*": "请求失败。"},
    },
    "en": {
        "html_lang": "en", "app": "Insurance administration", "other_lang": "中文", "other_lang_name": "zh",
        "switch_label": "切换到中文",
        "policies_title": "Policies in force", "policy_title": "Policy", "back": "All policies",
        "key_legend": "Staff key",
        "key_intro": "Enter your staff key (mpk_…). It is kept only in this tab (sessionStorage) and sent in a request "
                     "header, never in the address; closing the tab forgets it.",
        "key_label": "Key", "key_button": "Sign in", "sign_out": "Sign out",
        "loading": "Loading…", "region": "Region", "name": "Name", "version": "Version", "effective": "Effective",
        "tiers": "Tiers", "source": "Source", "references": "References", "general": "General settings",
        "examples": "Worked examples", "no_examples": "This policy file carries no worked examples.",
        "no_references": "No references listed.",
        "field": "Amount", "expected": "Expected", "computed": "Computed", "passed": "passed", "failed": "differs",
        "example_error": "The example could not be settled: {error}", "note": "Note",
        "errors": {"auth": "The key is wrong or revoked; enter it again.", "not_found": "No such policy: {id}",
                   "network": "The server could not be reached; try again later.", "*": "The request failed."},
    },
}


def admin_text(lang: str) -> dict[str, Any]:
    return TEXT["en" if lang == "en" else "zh"]

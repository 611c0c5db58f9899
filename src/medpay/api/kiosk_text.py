"""The words of the face kiosk's page (``/t/face``), zh-CN first and English: short sentences in large type for
people who may not read well, every refusal with its reason and the way without a face (医保码 or 身份证).

Errors from the API arrive as ``{"error": {"code", "field", "message"}}``; the page shows ``errors["code.field"]``,
else ``errors["code.*"]``, else ``errors["*"]``, with the API's own words beside it (as the mobile pages do).
"""

from __future__ import annotations

from typing import Any

from medpay.api.mobile.text import page_text

SHARED_ERRORS = ("invalid.gateway", "invalid.payer_token", "network", "*")  # worded as in the mobile pages


def _shared(lang: str) -> dict[str, str]:
    return {key: page_text(lang)["errors"][key] for key in SHARED_ERRORS}


TEXT: dict[str, dict[str, Any]] = {
    "zh": {
        "html_lang": "zh-CN", "title": "刷脸支付", "other_lang": "English", "other_lang_name": "en",
        "switch_label": "Switch to English",
        "start": "开始刷脸支付", "start_hint": "请站在屏幕正前方，摘下帽子和口罩。",
        "fallback": "改用医保码或身份证", "fallback_hint": "不想刷脸，或刷脸没有成功？请出示医保码，或到窗口出示身份证。",
        "fallback_done": "请向收费窗口出示医保电子凭证二维码，或出示身份证。本次没有扣款。",
        "camera_wait": "正在打开摄像头…", "camera_denied": "无法使用摄像头。请改用医保码或身份证。",
        "rest": "请看着屏幕，保持不动", "step": "第 {n} 步：{action}", "captured": "已拍好，请稍候…",
        "pin_title": "请输入刷脸密码", "pin_hint": "开通刷脸时设置的 6 位数字", "pin_clear": "清除",
        "pin_back": "退格", "pin_ok": "确定", "verifying": "正在核验…",
        "who": "您好，{name}", "idno": "证件号码 {idno}", "loading_bills": "正在查询待缴费用…",
        "no_bills": "您在本院没有待缴费用。", "bill_title": "请核对费用",
        "total": "医疗费总额", "part_fund": "医保基金支付", "part_account": "个人账户支付", "part_family": "其中家庭共济",
        "part_cash": "您需自付（钱包）", "pay": "确认支付", "cancel": "取消", "paying": "正在支付…",
        "paid": "支付成功", "setl_id": "结算号 {id}", "done": "完成",
        "state_in_doubt": "支付结果确认中。请勿重复支付，请到窗口查询。",
        "state_declined": "支付被拒绝：钱包余额不足或支付方式不可用。没有结算，也没有扣款。",
        "state_failed": "支付没有完成，也没有扣款。请到窗口缴费。",
        "refused": "没有成功", "again": "重新刷脸",
        "setup_title": "自助机登记（工作人员）",
        "setup_intro": "本机的签名密钥在本浏览器中生成，私钥不能导出。请把下面的公钥交给医保经办人员登记："
                       "medpay ecert terminal-register --kind face --fixmedins-code 机构编号 --name 名称 --public-key 公钥，"
                       "再把得到的终端编号填在这里。",
        "setup_key": "本机公钥", "setup_org": "定点医药机构编号", "setup_terminal": "终端编号（TM…）",
        "setup_limit": "单笔限额（元）",
        "setup_limit_hint": "刷脸时按此金额选择比对阈值；超过限额的账单请到窗口缴费。",
        "over_limit": "这笔费用超过本机的刷脸支付限额 ¥{limit}，请改用医保码或身份证到窗口缴费。",
        "setup_save": "保存登记", "setup_saved": "已登记：{terminal}（{org}）",
        "no_webcrypto": "此浏览器无法生成 Ed25519 密钥，或没有通过 HTTPS 访问。请联系工作人员。",
        "med_types": page_text("zh")["med_types"],
        "actions": page_text("zh")["actions"],  # worded as in the app's selfie enrolment
        "errors": {
            "face_quality.*": "没有看清您的脸：请正对屏幕，靠近一点，保持光线充足。",
            "liveness_failed.*": "没有按提示完成动作，或顺序不对。",
            "frames_replayed.*": "画面像是录像或照片，不能用于支付。",
            "face_mismatch.pin": "人脸与密码不匹配。",
            "face_mismatch.id_last4": "身份证号后四位不匹配。",
            "face_locked.*": "错误次数过多，本人刷脸支付已锁定。请带身份证到窗口解锁。",
            "invalid.pin": "请输入 6 位数字密码。",
            "session_invalid.*": "本次刷脸已超时，请重新开始。",
            "not_found.session_id": "本次刷脸已超时，请重新开始。",
            "unauthorized.*": "本机未登记或签名未通过，请联系工作人员。",
            "forbidden.X-Terminal-Id": "本机没有登记为刷脸终端，请联系工作人员。",
            "too_large.*": "照片太大，请重新开始。",
            "internal": "系统暂时出错，本次没有扣款。",
            **_shared("zh"),
        },
    },
    "en": {
        "html_lang": "en", "title": "Pay by face", "other_lang": "中文", "other_lang_name": "zh",
        "switch_label": "切换到中文",
        "start": "Start paying by face", "start_hint": "Stand in front of the screen; take off hat and mask.",
        "fallback": "Use QR code or ID card instead",
        "fallback_hint": "Rather not use your face, or it didn't work? Show your insurance QR code, or your ID card "
                         "at the window.",
        "fallback_done": "Show your e-certificate QR code to the window's scanner, or your ID card. Nothing was "
                         "charged.",
        "camera_wait": "Opening the camera…", "camera_denied": "The camera can't be used. Please use the QR code "
                                                               "or ID card instead.",
        "rest": "Look at the screen and keep still", "step": "Step {n}: {action}",
        "captured": "Done, one moment…",
        "pin_title": "Enter your face-payment PIN", "pin_hint": "the 6 digits you chose when enrolling",
        "pin_clear": "Clear", "pin_back": "Delete", "pin_ok": "OK", "verifying": "Checking…",
        "who": "Hello, {name}", "idno": "ID number {idno}", "loading_bills": "Looking up your bills…",
        "no_bills": "You have no bills to pay here.", "bill_title": "Please check the bill",
        "total": "Total medical fees", "part_fund": "Insurance fund", "part_account": "Personal account",
        "part_family": "of which family mutual aid", "part_cash": "You pay (wallet)", "pay": "Confirm and pay",
        "cancel": "Cancel", "paying": "Paying…", "paid": "Paid", "setl_id": "Settlement no. {id}", "done": "Done",
        "state_in_doubt": "The payment is being confirmed. Don't pay again; ask at the window.",
        "state_declined": "Payment declined: not enough in the wallet, or the payment method is unavailable. "
                          "Nothing was settled or charged.",
        "state_failed": "The payment did not go through and nothing was charged. Please pay at the window.",
        "refused": "That did not work", "again": "Try my face again",
        "setup_title": "Kiosk set-up (staff)",
        "setup_intro": "This kiosk's signing key was made in this browser; its private half can't be exported. Give "
                       "the public key below to the insurance office to register (medpay ecert terminal-register "
                       "--kind face --fixmedins-code CODE --name NAME --public-key KEY) and enter the terminal id "
                       "it prints here.",
        "setup_key": "This kiosk's public key", "setup_org": "Institution code", "setup_terminal": "Terminal id (TM…)",
        "setup_limit": "Limit per payment (yuan)",
        "setup_limit_hint": "Faces are compared at the threshold for this amount; bills above it are paid at the window.",
        "over_limit": "This bill is above this kiosk's face-payment limit of ¥{limit}; please use the QR code or ID "
                      "card at the window.",
        "setup_save": "Save", "setup_saved": "Registered: {terminal} ({org})",
        "no_webcrypto": "This browser can't make an Ed25519 key, or the page is not served over HTTPS. Please call "
                        "the staff.",
        "med_types": page_text("en")["med_types"],
        "actions": page_text("en")["actions"],
        "errors": {
            "face_quality.*": "Your face wasn't seen clearly: face the screen, come a little closer, in good light.",
            "liveness_failed.*": "The movements were not done as asked, or not in the asked order.",
            "frames_replayed.*": "This looks like a recording or a photo; it can't be used to pay.",
            "face_mismatch.pin": "Face and PIN do not match.",
            "face_mismatch.id_last4": "The last 4 characters of the ID number do not match.",
            "face_locked.*": "Too many wrong tries: paying by face is locked for you. Unlock it at the window with "
                             "your ID card.",
            "invalid.pin": "Enter your 6-digit PIN.",
            "session_invalid.*": "This attempt timed out; please start again.",
            "not_found.session_id": "This attempt timed out; please start again.",
            "unauthorized.*": "This kiosk is not registered, or its signature was refused; please call the staff.",
            "forbidden.X-Terminal-Id": "This kiosk is not registered as a face terminal; please call the staff.",
            "too_large.*": "The pictures were too large; please start again.",
            "internal": "Something went wrong on our side; nothing was charged.",
            **_shared("en"),
        },
    },
}


def kiosk_text(lang: str) -> dict[str, Any]:
    return TEXT["en" if lang == "en" else "zh"]

"""The words of the patient's mobile pages, zh-CN first and English: the templates use them, and the pages'
JavaScript gets them (with the error messages) as one JSON block, so every message has one place.

Errors from the API arrive as ``{"error": {"code", "field", "message"}}`` with English messages; the page
shows ``errors["code.field"]``, else ``errors["code.*"]``, else ``errors["*.field"]``, else ``errors["*"]`` (with the
API's own words beside it).
"""

from __future__ import annotations

from typing import Any

from medpay.domain.ecert_code import BUSINESS_TYPES

COMMON_BUSINESS_TYPES = ("01301", "01101", "01104", "02121")  # 门诊结算, 挂号, 住院押金, 药店购药: listed first

_BUSINESS_TYPES_EN = {
    "01101": "Outpatient registration", "01102": "Inpatient record", "01103": "Admission",
    "01104": "Inpatient deposit", "01201": "Outpatient consultation", "01202": "Examination booking",
    "01203": "Examination", "01204": "Treatment", "01301": "Outpatient payment", "01302": "Medicine pick-up",
    "02121": "Pharmacy purchase", "02122": "Download a prescription",
}
# 医疗类别 of the visits a bill code can be for
_MED_TYPES = {
    "zh": {"11": "普通门诊", "12": "门诊挂号", "13": "急诊", "14": "门诊慢特病", "19": "其他门诊", "21": "普通住院",
           "23": "转外住院", "24": "急诊转住院", "41": "定点药店购药", "51": "生育门诊", "52": "生育住院"},
    "en": {"11": "Outpatient visit", "12": "Outpatient registration", "13": "Emergency", "14": "Chronic or special "
           "outpatient care", "19": "Other outpatient care", "21": "Inpatient stay", "23": "Inpatient stay, referred",
           "24": "Emergency admission", "41": "Pharmacy purchase", "51": "Maternity outpatient care",
           "52": "Maternity inpatient stay"},
}

TEXT: dict[str, dict[str, Any]] = {
    "zh": {
        "html_lang": "zh-CN", "app": "医保码", "other_lang": "English", "other_lang_name": "en",
        "switch_label": "Switch to English", "nav_label": "主要功能",
        "nav_code": "医保码", "nav_pay": "扫码付", "nav_activate": "激活",
        "holder": "{name}（{idno}）",
        # activation
        "activate_title": "激活医保电子凭证",
        "activate_intro": "验证码会发送到医保登记的手机号。本机会生成一把设备密钥，医保电子凭证只与它绑定；"
                          "私钥只保存在本浏览器中，不会上传。",
        "psn_no": "人员编号", "psn_no_hint": "14 位数字，见参保凭证", "certno": "身份证号码",
        "certno_hint": "18 位，最后一位可能是 X",
        "consent_legend": "个人信息处理单独同意",
        "consent": "我单独同意医保平台为激活和使用医保电子凭证处理我的姓名、证件号码、医保登记的手机号和本机设备公钥。",
        "send_code_button": "发送验证码", "sending": "正在发送…",
        "code_sent": "验证码已发送至 {phone}（医保登记的手机号），5 分钟内有效。",
        "sms_code": "短信验证码", "sms_code_hint": "6 位数字",
        "counter_summary": "没有收到短信，或医保没有登记手机号？",
        "counter_intro": "请带身份证到医保经办窗口或医院服务台，工作人员核验后会给您一个柜台激活码，在这里输入。",
        "counter_code": "柜台激活码",
        "activate_button": "生成设备密钥并激活", "activating": "正在激活…",
        "current_holder": "本机已激活：{holder}。再次激活会替换它。",
        "no_webcrypto": "此浏览器无法生成 Ed25519 设备密钥。请使用较新的浏览器，并通过 HTTPS 访问。",
        # the dynamic code
        "code_title": "医保电子凭证", "business_type": "用码业务", "common": "常用", "others": "其他",
        "qr_label": "医保电子凭证二维码：{business}", "loading": "正在生成二维码…",
        "countdown": "{s} 秒后自动刷新", "refreshed": "二维码已刷新", "refresh_now": "立即刷新",
        "show_hint": "请向收费窗口或扫码设备出示此码。二维码每分钟自动更新，请勿截图转发。",
        "download_png": "下载二维码 PNG", "not_activated": "本机还没有激活医保电子凭证。", "go_activate": "去激活",
        # paying a bill code
        "pay_title": "扫账单码支付",
        "pay_intro": "拍下收费窗口屏幕上的账单码。确认后一次结清：医保基金、个人账户（含家庭共济）和自付部分。",
        "photo": "拍摄或选择账单码照片", "photo_hint": "对准屏幕上的二维码，保持清晰",
        "paste_summary": "无法拍照？粘贴账单码", "paste_label": "账单码文本（MPBILL1.…）", "paste_button": "识别账单码",
        "reading": "正在识别…", "confirm_title": "请确认账单", "institution": "医疗机构", "what": "类别",
        "amount": "医疗费总额", "valid_until": "账单码有效至", "pay_button": "确认支付 ¥{amount}",
        "cancel": "取消", "paying": "正在支付…", "already_paid": "这张账单已经支付过了。",
        "result_title": "支付成功", "chart_label": "本次费用由谁支付", "setl_id": "结算号",
        "part_fund": "医保基金", "part_account": "个人账户", "part_family": "家庭共济", "part_cash": "现金（钱包）",
        "total": "合计", "pay_another": "支付另一张账单",
        "state_in_doubt": "支付结果确认中。请勿重复支付，稍后到窗口查询。",
        "state_declined": "支付被拒绝：钱包余额不足或支付方式不可用。没有结算，也没有扣款。",
        "state_failed": "支付没有完成，也没有扣款。请到窗口缴费。",
        # face self-enrolment (刷脸开通) and withdrawal
        "face_title": "刷脸支付", "nav_face": "刷脸",
        "face_intro": "开通后，可在医院的刷脸自助机上用人脸加 6 位刷脸密码支付。不开通也可以一直使用医保码或身份证。",
        "face_consent_legend": "人脸信息处理单独同意（版本 {version}）",
        "face_consent_points": [
            "收集什么：开通时摄像头拍摄的一段自拍画面，由此计算出的人脸特征模板，以及您设置的刷脸密码（只保存其加密索引）。",
            "为什么：仅用于在定点医药机构的刷脸终端上核验是您本人，完成医保支付；不用于其他任何目的。",
            "保存多久：人脸模板加密保存，直到您撤回同意为止；撤回后立即删除。用于防止翻拍的画面指纹只保留一天。",
            "原始照片和视频从不保存：画面只在内存中处理，不写入磁盘、日志或数据库。",
            "如何撤回：随时在本页点击“撤回同意并删除人脸信息”，或到医保经办窗口办理。撤回不影响使用医保码和身份证。",
        ],
        "face_consent_needed": "请先阅读并勾选单独同意：勾选前不会打开摄像头。",
        "face_consent": "我已阅读上述说明，单独同意医保平台为刷脸支付处理我的人脸信息。",
        "face_pin": "设置刷脸密码", "face_pin_hint": "6 位数字，不能全部相同或连续（如 123456）",
        "face_pin_again": "再次输入刷脸密码", "face_pin_mismatch": "两次输入的密码不一致，请重新输入。",
        "face_pin_format": "请输入 6 位数字。",
        "face_start": "拍摄自拍并开通", "face_camera_note": "勾选同意并点击后才会打开摄像头。请正对镜头，光线充足。",
        "camera_wait": "正在打开摄像头…", "rest": "请看着镜头，保持不动", "step": "第 {n} 步：{action}",
        "captured": "已拍好，正在开通…",
        "actions": {"blink": "请眨眨眼", "open_mouth": "请张张嘴", "turn_left": "请向左转头", "turn_right": "请向右转头"},
        "face_enrolled": "刷脸支付已开通。支付时请在刷脸自助机上刷脸并输入刷脸密码。",
        "face_refused": "没有开通成功，没有保存任何人脸信息。",
        "face_reason": "原因：{reason}",
        "face_again": "重新拍摄",
        "face_withdraw_title": "撤回同意",
        "face_withdraw_intro": "撤回后，您的人脸模板会立即删除，刷脸支付随之关闭；以后可以重新开通。",
        "face_withdraw": "撤回同意并删除人脸信息", "face_withdraw_confirm": "确定撤回同意并删除人脸信息吗？",
        "face_withdraw_yes": "确定撤回", "face_withdraw_no": "不撤回",
        "face_withdrawn": "已撤回同意，您的人脸模板已删除，刷脸支付已关闭。",
        "face_not_enrolled": "您没有开通刷脸支付，没有需要删除的人脸信息。",
        "camera_denied": "无法使用摄像头：请允许本页使用摄像头，或到医保经办窗口开通。",
        # paying what the doctor ordered (诊间支付)
        "nav_bills": "缴费", "bills_title": "待缴费用",
        "bills_intro": "医生开具的检查、药品等费用上传后会列在这里。核对明细后一次结清：医保基金、个人账户（含家庭共济）和自付部分，不用再到窗口排队。",
        "bills_none": "现在没有待缴费用。", "bills_loading": "正在查询…", "bills_open": "查看明细",
        "bills_count": "{n} 项", "bills_ready": "开单时间",
        "lines_title": "费用明细", "line_item": "项目", "line_amount": "金额", "line_note": "说明",
        "line_levels": {"01": "甲类", "02": "乙类", "03": "丙类"},
        "line_ownpay": "全自费 ¥{amount}", "line_preselfpay": "乙类先行自付 ¥{amount}",
        "line_overlmt": "超出限价 ¥{amount}，自付", "presettle_title": "预结算：本次费用由谁支付",
        "presettle_note": "以上为按现行政策 {policy} 的预结算；确认后按同样的明细结算。",
        "pay_cash_button": "确认支付（自付 ¥{amount}）", "pay_zero_button": "确认结算（无需自付）",
        "back_to_bills": "返回待缴费用", "bill_stale": "医院刚刚更新了费用明细，请重新核对后再支付。",
        "resuming": "正在确认上次支付的结果…", "nothing_due": "这次就诊没有待缴费用：已经支付，或医院已撤销。",
        "bills_paid_title": "缴费成功",
        "med_types": _MED_TYPES["zh"], "med_type_other": "医疗类别 {code}",
        "business_types": dict(BUSINESS_TYPES),
        "errors": {
            "conflict.version": "医院刚刚更新了费用明细，请重新核对后再支付。",
            "not_found.mdtrt_id": "找不到这次就诊，或它不是您的就诊。",
            "conflict.mdtrt_id": "住院费用在出院时结算，不能在这里支付。",
            "invalid.consent": "请勾选上面的单独同意后再激活。",
            "invalid.certno": "身份证号码与人员编号不符，请核对。",
            "invalid.psn_no": "请填写人员编号。",
            "invalid.device_public_key": "设备密钥无效，请刷新页面后重试。",
            "conflict.device_public_key": "此设备密钥已绑定其他人，请刷新页面后重试。",
            "activation_pending.psn_no": "已有一次激活正在进行：请输入已收到的验证码，或 5 分钟后再试，或到柜台激活。",
            "rate_limited.psn_no": "今天发送的验证码太多了，请明天再试，或带身份证到柜台激活。",
            "conflict.phone": "医保没有登记您的手机号：请带身份证到柜台激活，或在柜台登记手机号。",
            "sms_unavailable.sms": "验证码没有发送成功，请稍后重试，或到柜台激活。",
            "invalid.code": "请输入短信里的 6 位验证码。",
            "code_wrong.code": "验证码不正确或已过期；错误太多次后需要重新发送。",
            "invalid.activation_id": "请先发送验证码。",
            "invalid.counter_code": "请输入工作人员给您的 10 位柜台激活码。",
            "code_wrong.counter_code": "柜台激活码不正确或已过期，请向工作人员重新获取。",
            "unauthorized.X-Signature": "设备签名未通过验证，请重新激活。",
            "unauthorized.X-Nonce": "请求重复了，请重试。",
            "unauthorized.X-Timestamp": "手机时间不准确，请校准时间后重试。",
            "ecert_revoked.X-Ecert-Id": "此医保电子凭证已在其他设备上激活或已停用。如非本人操作，请致电 12393，并重新激活。",
            "image_invalid.image": "照片里没有找到唯一的一个二维码，请对准账单码重拍。",
            "invalid.image": "请拍摄或选择一张账单码照片。",
            "too_large.body": "照片太大（超过 9 MiB），请重拍一张。",
            "code_forged.*": "这不是医保平台签发的账单码，请不要支付，并告知工作人员。",
            "code_expired.*": "账单码已过期，请让窗口重新生成。",
            "code_invalid.*": "这不是医保账单码，请扫描收费窗口屏幕上的账单码。",
            "invalid.bill": "请粘贴完整的账单码（以 MPBILL1. 开头）。",
            "forbidden.bill": "这张账单不是您的，不能用本机的医保电子凭证支付。",
            "conflict.bill": "账单内容已变更，请让窗口重新生成账单码。",
            "invalid.gateway": "暂不能在线支付，请到窗口缴费。",
            "invalid.payer_token": "您还没有绑定支付方式，请到窗口缴费。",
            "face_quality.*": "没有看清您的脸：请正对镜头，靠近一点，保持光线充足。",
            "liveness_failed.*": "没有按提示完成动作，或顺序不对。",
            "frames_replayed.*": "画面像是录像或照片，请本人对着镜头重新拍摄。",
            "challenge_invalid.*": "拍摄超时，请重新拍摄。",
            "invalid.challenge_token": "拍摄超时，请重新拍摄。",
            "invalid.pin": "刷脸密码须为 6 位数字，且不能全部相同或连续。",
            "invalid.consent_version": "同意书已更新，请刷新页面后重新阅读并同意。",
            "network": "网络不可用，请稍后重试。",
            "internal": "系统暂时出错，本次操作没有生效，请稍后重试。",
            "*": "操作没有成功。",
        },
    },
    "en": {
        "html_lang": "en", "app": "Medical insurance code", "other_lang": "中文", "other_lang_name": "zh",
        "switch_label": "切换到中文", "nav_label": "Main",
        "nav_code": "My code", "nav_pay": "Pay a bill", "nav_activate": "Activate",
        "holder": "{name} ({idno})",
        "activate_title": "Activate your e-certificate",
        "activate_intro": "A code is texted to the phone number on your insurance record. This device makes a key "
                          "of its own and your e-certificate is bound to it; the private key stays in this browser "
                          "and is never sent.",
        "psn_no": "Personal insurance number", "psn_no_hint": "14 digits, on your insurance record",
        "certno": "ID card number", "certno_hint": "18 characters; the last may be X",
        "consent_legend": "Separate consent to processing personal information",
        "consent": "I separately consent to the platform processing my name, my ID number, the phone number on my "
                   "insurance record and this device's public key to activate and use the e-certificate.",
        "send_code_button": "Text me a code", "sending": "Sending…",
        "code_sent": "A code was texted to {phone}, the number on your insurance record; it is valid for 5 minutes.",
        "sms_code": "Code from the text message", "sms_code_hint": "6 digits",
        "counter_summary": "No text, or no phone on your insurance record?",
        "counter_intro": "Bring your ID card to an insurance office or a hospital's service counter; after checking "
                         "it, the staff give you a counter code to enter here.",
        "counter_code": "Counter code",
        "activate_button": "Make a device key and activate", "activating": "Activating…",
        "current_holder": "This device holds the e-certificate of {holder}. Activating again replaces it.",
        "no_webcrypto": "This browser can't make an Ed25519 device key. Use a current browser, over HTTPS.",
        "code_title": "Medical insurance e-certificate", "business_type": "Use", "common": "Common",
        "others": "Others", "qr_label": "E-certificate QR code: {business}", "loading": "Making your code…",
        "countdown": "Refreshes in {s} s", "refreshed": "Code refreshed", "refresh_now": "Refresh now",
        "show_hint": "Show this code to the window's scanner. It changes every minute; don't share screenshots.",
        "download_png": "Download the code as PNG", "not_activated": "No e-certificate on this device yet.",
        "go_activate": "Activate",
        "pay_title": "Pay a bill code",
        "pay_intro": "Take a photo of the bill code on the window's screen. After you confirm, the insurance fund, "
                     "your personal account (with family mutual aid) and your own share settle in one step.",
        "photo": "Take or choose a photo of the bill code", "photo_hint": "Aim at the QR code on the screen; keep it sharp",
        "paste_summary": "Can't take a photo? Paste the code", "paste_label": "Bill code text (MPBILL1.…)",
        "paste_button": "Read the code", "reading": "Reading…", "confirm_title": "Confirm the bill",
        "institution": "Institution", "what": "Type", "amount": "Total medical fees",
        "valid_until": "Bill code valid until", "pay_button": "Pay ¥{amount}", "cancel": "Cancel",
        "paying": "Paying…", "already_paid": "This bill has been paid already.", "result_title": "Paid",
        "chart_label": "Who paid this bill", "setl_id": "Settlement no.", "part_fund": "Insurance fund",
        "part_account": "Personal account", "part_family": "Family mutual aid", "part_cash": "Cash (wallet)",
        "total": "Total", "pay_another": "Pay another bill",
        "state_in_doubt": "The payment is being confirmed. Don't pay again; ask at the window shortly.",
        "state_declined": "Payment declined: not enough in the wallet, or the payment method is unavailable. "
                          "Nothing was settled or charged.",
        "state_failed": "The payment did not go through and nothing was charged. Please pay at the window.",
        "face_title": "Pay by face", "nav_face": "Face",
        "face_intro": "Once enrolled, you can pay at a hospital's face kiosk with your face and a 6-digit face PIN. "
                      "Without it you can always use the QR code or your ID card.",
        "face_consent_legend": "Separate consent to processing your face information (version {version})",
        "face_consent_points": [
            "What is collected: a short selfie filmed by the camera when you enrol, the face template computed "
            "from it, and the face PIN you set (only its encrypted index is kept).",
            "Why: only to check that it is you at a face terminal of an insurance-designated institution and to "
            "settle the payment; for nothing else.",
            "How long: the face template is kept encrypted until you withdraw consent, and deleted at once then. "
            "Fingerprints of the frames, used against replayed videos, are kept one day.",
            "Raw photos and videos are never stored: the frames are processed in memory and never written to disk, "
            "logs or the database.",
            "How to withdraw: at any time on this page (\"Withdraw consent and delete my face data\"), or at an "
            "insurance office. Withdrawing does not affect the QR code or your ID card.",
        ],
        "face_consent_needed": "Read and tick the separate consent first: the camera stays off until you do.",
        "face_consent": "I have read the above and separately consent to the platform processing my face "
                        "information for face payment.",
        "face_pin": "Set a face PIN", "face_pin_hint": "6 digits, not all the same nor a run like 123456",
        "face_pin_again": "Enter the face PIN again", "face_pin_mismatch": "The two PINs differ; enter them again.",
        "face_pin_format": "Enter 6 digits.",
        "face_start": "Take a selfie and enrol",
        "face_camera_note": "The camera opens only after you tick the consent and tap. Face the camera in good light.",
        "camera_wait": "Opening the camera…", "rest": "Look at the camera and keep still", "step": "Step {n}: {action}",
        "captured": "Done; enrolling…",
        "actions": {"blink": "Blink your eyes", "open_mouth": "Open your mouth", "turn_left": "Turn your head left",
                    "turn_right": "Turn your head right"},
        "face_enrolled": "Face payment is on. To pay, show your face at a face kiosk and enter your face PIN.",
        "face_refused": "Not enrolled; no face information was kept.",
        "face_reason": "Reason: {reason}",
        "face_again": "Film again",
        "face_withdraw_title": "Withdraw consent",
        "face_withdraw_intro": "Withdrawing deletes your face template at once and turns face payment off; you can "
                               "enrol again later.",
        "face_withdraw": "Withdraw consent and delete my face data",
        "face_withdraw_confirm": "Withdraw your consent and delete your face data?",
        "face_withdraw_yes": "Withdraw", "face_withdraw_no": "Keep it",
        "face_withdrawn": "Consent withdrawn: your face template is deleted and face payment is off.",
        "face_not_enrolled": "You have not enrolled for face payment: there is no face data to delete.",
        "camera_denied": "The camera can't be used: allow this page to use it, or enrol at an insurance office.",
        # paying what the doctor ordered
        "nav_bills": "Bills", "bills_title": "Bills to pay",
        "bills_intro": "Tests, medicines and other fees the doctor ordered appear here once the hospital uploads them. "
                       "Check the lines and pay in one step — fund, personal account (family aid included) and your "
                       "own share — without queueing at a window.",
        "bills_none": "Nothing to pay right now.", "bills_loading": "Looking…", "bills_open": "See the bill",
        "bills_count": "{n} items", "bills_ready": "Billed at",
        "lines_title": "What was ordered", "line_item": "Item", "line_amount": "Amount", "line_note": "Note",
        "line_levels": {"01": "Class A", "02": "Class B", "03": "Class C"},
        "line_ownpay": "Paid in full by you ¥{amount}", "line_preselfpay": "Class B share you pay first ¥{amount}",
        "line_overlmt": "¥{amount} above the price limit, paid by you",
        "presettle_title": "Pre-settlement: who pays this bill",
        "presettle_note": "Worked out under policy {policy} as it stands; confirming settles exactly these lines.",
        "pay_cash_button": "Pay (your share ¥{amount})", "pay_zero_button": "Settle (nothing for you to pay)",
        "back_to_bills": "Back to bills", "bill_stale": "The hospital has just changed the bill. Check it again before paying.",
        "resuming": "Checking how your last payment went…",
        "nothing_due": "Nothing is due on this visit: it was paid, or the hospital withdrew the fees.",
        "bills_paid_title": "Paid",
        "med_types": _MED_TYPES["en"], "med_type_other": "Medical type {code}",
        "business_types": _BUSINESS_TYPES_EN,
        "errors": {
            "conflict.version": "The hospital has just changed the bill. Check it again before paying.",
            "not_found.mdtrt_id": "No such visit of yours.",
            "conflict.mdtrt_id": "A hospital stay is settled at discharge, not here.",
            "invalid.consent": "Tick the separate consent above to activate.",
            "invalid.certno": "This ID card number doesn't match the insurance number. Please check both.",
            "invalid.psn_no": "Enter your personal insurance number.",
            "invalid.device_public_key": "The device key was refused; reload the page and try again.",
            "conflict.device_public_key": "This device key is bound to someone else; reload the page and try again.",
            "activation_pending.psn_no": "An activation is already under way: enter the code you received, try "
                                         "again in 5 minutes, or activate at a counter.",
            "rate_limited.psn_no": "Too many codes today; try tomorrow, or activate at a counter with your ID card.",
            "conflict.phone": "No phone number is on your insurance record: activate at a counter with your ID card, "
                              "or have your number recorded there.",
            "sms_unavailable.sms": "The code could not be texted; try again shortly, or activate at a counter.",
            "invalid.code": "Enter the 6 digits from the text message.",
            "code_wrong.code": "Wrong or expired code; after too many tries, ask for a new one.",
            "invalid.activation_id": "Ask for a code first.",
            "invalid.counter_code": "Enter the 10-character counter code the staff gave you.",
            "code_wrong.counter_code": "Wrong or expired counter code; ask the staff for a new one.",
            "unauthorized.X-Signature": "This device's signature was refused; activate again.",
            "unauthorized.X-Nonce": "The request was repeated; try again.",
            "unauthorized.X-Timestamp": "Your phone's clock is off; set it right and try again.",
            "ecert_revoked.X-Ecert-Id": "This e-certificate was activated on another device or revoked. If that "
                                        "wasn't you, call 12393, and activate again.",
            "image_invalid.image": "No single QR code found in the photo; take it again, aimed at the bill code.",
            "invalid.image": "Take or choose a photo of the bill code.",
            "too_large.body": "The photo is too large (over 9 MiB); take another.",
            "code_forged.*": "This bill code was not issued by the platform. Don't pay it; tell the staff.",
            "code_expired.*": "This bill code has expired; ask the window for a new one.",
            "code_invalid.*": "This is not a medical-insurance bill code; scan the one on the window's screen.",
            "invalid.bill": "Paste the whole bill code (it starts with MPBILL1.).",
            "forbidden.bill": "This bill is for another patient; this device's e-certificate can't pay it.",
            "conflict.bill": "The bill changed; ask the window for a new bill code.",
            "invalid.gateway": "Paying online is not available; please pay at the window.",
            "invalid.payer_token": "You have no payment method bound; please pay at the window.",
            "face_quality.*": "Your face was not seen clearly: face the camera, come closer, in good light.",
            "liveness_failed.*": "The actions were not done as asked, or not in order.",
            "frames_replayed.*": "This looks like a recording or a photo; film yourself live again.",
            "challenge_invalid.*": "Filming took too long; film again.",
            "invalid.challenge_token": "Filming took too long; film again.",
            "invalid.pin": "The face PIN must be 6 digits, not all the same nor a run.",
            "invalid.consent_version": "The consent text changed; reload the page, read it and consent again.",
            "network": "The network is unavailable; try again shortly.",
            "internal": "Something went wrong on our side and nothing was applied; try again shortly.",
            "*": "That did not work.",
        },
    },
}


def page_text(lang: str) -> dict[str, Any]:
    return TEXT["en" if lang == "en" else "zh"]


def business_type_groups(lang: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group label, [(code, name)]) for the business type picker: the common ones first."""
    t = page_text(lang)
    names = t["business_types"]
    others = [code for code in BUSINESS_TYPES if code not in COMMON_BUSINESS_TYPES]
    return [(t["common"], [(c, names[c]) for c in COMMON_BUSINESS_TYPES]), (t["others"], [(c, names[c]) for c in others])]

"""Task texts in Chinese, Japanese or Korean, glossed into the English the readers match.

The readers of a task text (tools.task_text, tools.scope, agent.goals) match English words, with a
few Spanish, French, German and Italian ones. A text written in CJK scripts has no spaces and none
of those words, so "胸部X光片肺炎分类，两类，共5000张" read as off-topic. `gloss` rewrites the
terms a task description uses (modality, body part, finding, classes, counts, time, device, intent)
into English words with spaces around them, and keeps the way back: `Glossed.origin` maps a span
of the glossed text to the characters of the original, so each field is still shown with the
user's own words ("n_classes=2 <- '两类'").

Only the listed terms are glossed; other CJK characters pass through (and match nothing). A text
without CJK characters is returned unchanged. Numbers: digits as written, full-width digits, the
myriad "万" (1.2万 = 12,000), and numerals in characters before a counter ("两类", "三千张").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")

# (pattern, English). One alternation, tried at each position in this order, so a longer term is
# listed before a term it contains ("分类" before "类", "肺炎" before "肺").
_TERMS: tuple[tuple[str, str], ...] = (
    (r"学习率|學習率|学習率|학습률", "learning rate"),  # (before "学習", train)
    # a change by a factor ("エポックを2倍に", "学习率减半"): the words agent.intents reads as one
    (r"加倍|倍增|翻倍|两倍|兩倍|二倍|2\s*倍|두\s*배|2\s*배", "double"),
    (r"三倍|3\s*倍|세\s*배|3\s*배", "triple"),
    (r"减半|減半|半分|절반|반으로", "halve"),
    # the task
    (r"二分类|二分類|이진\s*분류|2値分類", "binary classification"),
    (r"多分类|多分類|다중\s*분류", "multi-class classification"),
    (r"多标签|多ラベル|다중\s*레이블", "multi-label"),
    (r"分为|分成|区分为|に分類|に分ける|(?:으로|로)\s*분류", "classify into"),
    (r"分类|分類|분류|识别|識別|判别|鉴别|鑑別|判定|구분", "classification"),
    (r"分割|セグメンテーション|세그멘테이션|분할", "segmentation"),
    (r"目标检测|物体検出|객체\s*탐지", "object detection"),
    (r"检测|検出|검출|탐지|诊断|診断|진단|筛查|スクリーニング|선별", "detect"),
    (r"回归|回帰|회귀", "regression"),
    (r"分级|分級|등급|グレード", "grades"),
    (r"训练时间|訓練時間|学習時間|학습\s*시간", "training time"),
    (r"训练|訓練|学習|학습", "train"),
    (r"图像|图片|影像|画像|이미지|영상|사진|照片|写真", "images"),
    (r"数据集|データセット|데이터\s*세트|데이터셋", "dataset"),
    (r"病人|患者|환자", "patients"),
    (r"病例|症例|증례", "cases"),
    # modalities (before the body parts they contain)
    (r"胸片|胸部X光片|胸部X线片|胸部X線写真|胸部X線|흉부\s*X-?ray|흉부\s*엑스레이", "chest x-ray"),
    (r"X光片|X光|X线片|X线|X射线|X線|レントゲン|엑스레이|엑스선", "x-ray"),
    (r"钼靶|乳腺X线|マンモグラフィ\w*|맘모그래피|유방\s*촬영술?", "mammography"),
    (r"核磁共振|磁共振|磁気共鳴|자기\s*공명|엠알아이", "MRI"),
    (r"计算机断层|電算化断層|컴퓨터\s*단층", "CT"),
    (r"超声|超聲|超音波|초음파|エコー", "ultrasound"),
    (r"皮肤镜|皮膚鏡|皮膚镜|ダーモスコピー|더모스코피|피부경", "dermoscopy"),
    (r"病理切片|组织切片|組織切片|病理|组织学|組織学|병리|조직", "histopathology"),
    (r"眼底|안저", "fundus"),
    (r"结肠镜|結腸鏡|肠镜|大腸内視鏡|대장\s*내시경", "colonoscopy"),
    (r"胃镜|胃鏡|胃内視鏡|위\s*내시경", "gastroscopy"),
    (r"内镜|内窥镜|内視鏡|내시경", "endoscopy"),
    (r"息肉|ポリープ|용종|폴립", "polyps"),
    (r"显微镜|顕微鏡|현미경", "microscopy"),
    (r"血细胞|血球|혈구|血液细胞", "blood cells"),
    # findings and body parts
    (r"肺炎|폐렴", "pneumonia"),
    (r"结核|結核|결핵", "tuberculosis"),
    (r"肺结节|肺結節|폐\s*결절", "lung nodule"),
    (r"黑色素瘤|メラノーマ|悪性黒色腫|흑색종", "melanoma"),
    (r"阿尔茨海默\w*|アルツハイマー\w*|알츠하이머", "alzheimer"),
    (r"骨关节炎|変形性膝関節症|골관절염", "osteoarthritis"),
    (r"骨折|골절", "fracture"),
    (r"糖尿病性?(?:视网膜病变|網膜症|망막병증)|당뇨병성?\s*망막병증", "diabetic retinopathy"),
    (r"视网膜|網膜|망막", "retina"),
    (r"胸部|흉부|胸腔", "chest"),
    (r"肺部|肺|폐", "lung"),
    (r"大脑|脑部|脑|腦|脳|뇌", "brain"),
    (r"膝关节|膝関節|膝盖|膝|무릎", "knee"),
    (r"乳腺|乳房|유방", "breast"),
    (r"皮肤|皮膚|피부", "skin"),
    (r"血液|혈액", "blood"),
    (r"骨骼|骨|뼈", "bone"),
    (r"肝脏|肝臓|肝|간암", "liver"),
    (r"肾脏|腎臓|肾|腎|신장", "kidney"),
    (r"心脏|心臓|심장", "heart"),
    (r"甲状腺|갑상선", "thyroid"),
    (r"牙齿|歯科|牙|치아", "teeth"),
    (r"肿瘤|腫瘍|종양", "tumour"),
    (r"癌症|癌|암", "cancer"),
    (r"良性", "benign"),
    (r"恶性|悪性|악성", "malignant"),
    (r"正常|정상", "normal"),
    (r"异常|異常|비정상", "abnormal"),
    # data that is not medical imaging (tools.scope answers it with a note, or refuses it)
    (r"心电图|心電図|심전도", "ECG"),
    (r"脑电图|脳波|뇌파", "EEG"),
    (r"猫|ネコ|고양이", "cats"),
    (r"狗|犬|イヌ|강아지", "dogs"),
    (r"动物|動物|동물", "animals"),
    (r"花卉|花朵|鲜花|꽃", "flowers"),  # (not 花 alone: "花费时间" is spending time)
    (r"卫星|衛星|위성", "satellite"),
    (r"汽车|車両|자동차", "cars"),
    (r"人脸|顔画像|얼굴", "faces"),
    (r"缺陷|欠陥|결함", "defects"),
    (r"产品|製品|제품", "products"),
    (r"诗|詩", "poem"),
    # classes, counts and imbalance
    (r"不平衡|不均衡|불균형", "imbalanced"),
    (r"每类|每个类别|各类|クラスごと|1クラスあたり|클래스\s*당|클래스별", "per class"),
    (r"类别|類別|カテゴリー?|카테고리|클래스|クラス|类|類|(?<=[\d二两兩三四五六七八九十百千])\s*[种種]", "classes"),
    (r"张|張|枚|幅|(?<=[\d千万萬천만])\s*장", "images"),
    (r"(?<=[\d千万萬천만])\s*例", "cases"),
    (r"总共|总计|共计|合計|合计|共|총(?=[\s\d])", "total"),
    (r"大约|大概|约|約|およそ|약(?=[\s\d])", "about"),
    # limits and the device
    (r"参数量|参数|パラメータ数?|파라미터|매개변수", "parameters"),
    (r"显存|顯存|ビデオメモリ|VRAM", "GPU memory"),
    (r"内存|メモリ|메모리", "memory"),
    (r"显卡|顯卡|グラフィックボード|그래픽\s*카드", "GPU"),
    (r"只有|只用|仅|のみ|만\s*사용|뿐", "only"),
    (r"あり|有り|使える|있음|있어요?|있습니다|사용\s*가능", "available"),
    (r"以内|以下|不超过|不超過|まで|이내|이하|까지", "at most"),
    (r"小时|小時|時間|시간", "hours"),
    (r"分钟|分鐘|分間", "minutes"),
    (r"(?<=[\d\s])分(?![类類割析])|(?<=[\d\s])분(?![류할석])", "minutes"),
    (r"秒|(?<=\d)\s*초", "seconds"),
    # settings, as a follow-up changes them ("学习率改成0.01": the learning rate to 0.01)
    (r"批大小|批量大小|批次大小|バッチサイズ|배치\s*크기|배치\s*사이즈", "batch size"),
    (r"(?<=[\d个個])\s*(?:轮|輪|エポック|에폭|에포크|epochs?)", "epochs"),
    (r"에폭\s*수?|에포크\s*수?|エポック数?|轮数|輪數|训练轮次", "epochs"),
    (r"权重衰减|權重衰減|重み減衰|가중치\s*감쇠", "weight decay"),
    (r"数据增强|數據增強|データ拡張|데이터\s*증강", "augmentation"),
    (r"优化器|優化器|オプティマイザ|옵티마이저", "optimizer"),
    (r"冻结|凍結|동결", "freeze"),
    (r"改成|改为|改為|设为|設為|设置为|に変更|にして|로\s*변경|으로\s*변경|로\s*바꿔", " to "),
    # intent
    (r"微调|微調|ファインチューニング|ファインチューン|파인\s*튜닝|미세\s*조정", "fine-tune"),
    (r"从头训练|從頭訓練|从零训练|ゼロから学習|スクラッチから|처음부터\s*학습", "train from scratch"),
    (r"(?:准确率|準確率|精度|正解率|정확도)\s*(?:を|을|를|が|이|가)?\s*(?:最大化|最大に|最高に|最高|최대화|최대로|최대한|높게|높이|"
     r"上げ|高く|高め|尽可能高|越高越好)\w*", "maximize accuracy"),
    (r"准确率|準確率|精度|正解率|정확도", "accuracy"),
    (r"最快|最速|速く|가장\s*빠른|빠르게|尽快", "fastest"),
    (r"越快越好", "as fast as possible"),
    (r"标签噪声|标注错误|ラベルノイズ|라벨\s*노이즈|레이블\s*노이즈", "noisy labels"),
    (r"最大化|최대화|(?:最高|最大|최고|최대)(?=\s*(?:的|の)?\s*(?:准确率|準確率|精度|正解率|정확도|性能|성능))", "maximize"),
    (r"最高|最大|최대|최고", "at most"),
    (r"过拟合|過擬合|過学習|과적합", "overfitting"),
    (r"担心|擔心|心配|걱정", "worried about"),
    (r"比较|比較|비교", "compare"),
    (r"哪个更好|哪个好|哪一个更好|どちらが(?:良い|いい|よい)|どっちが(?:良い|いい)|어느\s*(?:것|쪽)이\s*(?:더\s*)?(?:좋|나)\w*",
     "which is better?"),
    (r"不要用|不要使用|别用|不用|不使用|避免使用", "do not use"),
    (r"不要|不需要|无需|無需", "no"),
    (r"(?:禁止使用|禁用|不能用|不可以用)(?=\s*[A-Za-z])", "do not use"),  # before the name; after it, as below
    (r"は?(?:使わない|使用しない|使えない|使用禁止|禁止)|(?:은|는)?\s*(?:사용하지\s*않\w*|사용\s*불가|사용\s*금지)|不可以用|不能用|"
     r"禁止使用|禁用", " is not allowed"),
    (r"使用|(?<!不)用(?=\s*[A-Za-z])|を使って|를\s*사용해서?|을\s*사용해서?", "use"),
    (r"和|与|及|與|と|및", "and"),
)
_TERM = re.compile("|".join(f"({p})" for p, _ in _TERMS))

_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
          "八": 8, "九": 9}
_SCALE = {"十": 10, "百": 100, "千": 1000}
# Numerals in characters, read only before a counter or a class word ("两类", "三千张"): alone they
# are parts of words ("统一", "一般").
_NUMERAL = re.compile(r"[零〇一二两兩三四五六七八九十百千万萬]+(?=\s*(?:个|個|개|种|種|类|類|张|張|枚|幅|名|例|位|"
                      r"クラス|カテゴリ|classes|小时|小時|時間|分钟|分鐘|分間|秒|天|日))")
# Digits with a myriad or a thousand in characters: "1.2万" = 12,000, "3천" = 3,000.
_MYRIAD = re.compile(r"(\d+(?:\.\d+)?)\s*(万|萬|만|千|천|亿|億|억)(?![a-zA-Z])")
_MYRIAD_VALUE = {"万": 1e4, "萬": 1e4, "만": 1e4, "千": 1e3, "천": 1e3, "亿": 1e8, "億": 1e8, "억": 1e8}
_COUNTER_AFTER_DIGITS = re.compile(r"(?<=\d)\s*(?:个|個|개|名|位)")  # "2개 클래스": a counter, dropped
_PARTICLES = set("をはがにでへ")  # Japanese case particles between glossed words: "学習率を0.01に"
_PUNCT = {"、": ", ", "。": ". ", "・": " ", "「": " ", "」": " ", "『": " ", "』": " ", "【": " ", "】": " ",
          "～": "-", "〜": "-"}


def _numeral(s: str) -> int:
    """The value of a numeral in characters: "两" 2, "十二" 12, "二十" 20, "三千五百" 3,500, "一万" 10,000."""
    total, section, digit = 0, 0, None
    for ch in s:
        if ch in _DIGIT:
            digit = _DIGIT[ch]
        elif ch in _SCALE:
            section += (1 if digit is None else digit) * _SCALE[ch]
            digit = None
        else:  # 万/萬
            total += (section + (digit or 0) or 1) * 10_000
            section, digit = 0, None
    return total + section + (digit or 0)


@dataclass(frozen=True)
class Glossed:
    """A glossed text and, for each of its characters, the span of the original it came from."""

    original: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @property
    def changed(self) -> bool:
        return self.text != self.original

    def origin(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that the glossed text[start:end] came from."""
        if not self.changed or start >= end:
            return start, end
        return self.starts[start], self.ends[end - 1]


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


@lru_cache(maxsize=256)
def gloss(text: str) -> Glossed:
    """`text` with its CJK task terms in English (see the module docstring); unchanged without CJK."""
    if not has_cjk(text):
        return Glossed(text, text, (), ())
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def emit(s: str, a: int, b: int) -> None:
        out.append(s)
        starts.extend([a] * len(s))
        ends.extend([b] * len(s))

    i = 0
    while i < len(text):
        if m := _MYRIAD.match(text, i):
            emit(f" {float(m.group(1)) * _MYRIAD_VALUE[m.group(2)]:.0f} ", i, m.end())
        elif m := _NUMERAL.match(text, i):
            emit(f" {_numeral(m.group())} ", i, m.end())
        elif m := _COUNTER_AFTER_DIGITS.match(text, i):
            emit(" ", i, m.end())
        elif m := _TERM.match(text, i):
            emit(f" {_TERMS[m.lastindex - 1][1]} ", i, m.end())  # type: ignore[operator]
        else:
            ch = text[i]
            plain = " " if ch in _PARTICLES else _PUNCT.get(ch) or unicodedata.normalize("NFKC", ch)
            if plain != ch and not plain.isalnum():  # full-width "，" "：" "（": a space after, as English has
                plain = plain.rstrip() + " " if plain.strip() not in "([{" else " " + plain.strip()
            emit(plain, i, i + 1)
            m = None
        i = m.end() if m else i + 1
    return Glossed(text, "".join(out), tuple(starts), tuple(ends))


__all__ = ["Glossed", "gloss", "has_cjk"]

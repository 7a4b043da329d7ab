"""A small, learnable Chinese reading-comprehension set the project generates itself.

Each context is a short biography: eight facts about one person in shuffled
order. Facts come in pairs of the same answer type (birthplace and the city
moved to, employer and school, graduation and wedding year, ...), so a model
must read the relation in the question, not just spot a city or a year.
Contexts use full-width punctuation (，。「」？) and come in Traditional (like
DRCD) or Simplified (like CMRC 2018) script, in SQuAD JSON; the longer ones
need two ``doc_stride`` windows at the demo's ``max_seq_length``.

``python -m ssl_cli.devtools.demo OUT_DIR`` writes ``train.json`` and ``dev.json``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SURNAMES = list("陳林黃張李王吳劉蔡楊許鄭謝郭洪曾邱廖賴周徐蘇葉莊呂江何蕭羅高")
GIVEN = list("志明家豪俊傑建宏雅婷怡君淑芬美玲宗翰冠宇承恩柏翰詩涵欣怡佳穎子軒品妤宇軒")
CITIES = ["臺北", "高雄", "臺中", "臺南", "新竹", "嘉義", "基隆", "花蓮", "臺東", "宜蘭", "屏東", "彰化", "南投",
          "香港", "澳門", "上海", "北京", "廣州", "杭州", "南京", "成都", "武漢", "西安", "廈門", "東京", "大阪"]
ORGS = ["中央研究院", "臺灣大學", "長榮航空", "台積電", "鴻海科技", "中華電信", "國泰銀行", "故宮博物院",
        "交通部", "清華大學", "成功大學", "聯發科技", "中國鋼鐵", "華碩電腦", "宏碁公司", "統一企業"]
FRUITS = ["芒果", "鳳梨", "西瓜", "荔枝", "龍眼", "香蕉", "葡萄", "蘋果", "木瓜", "芭樂", "柳丁", "草莓", "水蜜桃"]
HOBBIES = ["打籃球", "彈鋼琴", "畫水彩", "寫書法", "爬山", "游泳", "下圍棋", "拉小提琴", "攝影", "唱歌"]

SCHOOLS = ["臺灣大學", "清華大學", "成功大學", "政治大學", "交通大學", "中興大學", "師範大學", "中山大學"]
PETS = ["小狗", "小貓", "兔子", "金魚", "烏龜", "鸚鵡"]

# relation -> (fact template, question template, answer pool); {n} is the person, {a} the answer
RELATIONS = {
    "born": ("{n}出生於{a}，", "{n}出生於哪裡？", CITIES),
    "moved": ("後來搬到{a}居住。", "{n}後來搬到哪裡？", CITIES),
    "work": ("{n}目前在「{a}」工作。", "{n}在哪裡工作？", ORGS),
    "school": ("{n}畢業於{a}，", "{n}畢業於哪所學校？", SCHOOLS),
    "fruit": ("{n}最喜歡吃{a}。", "{n}最喜歡吃什麼水果？", FRUITS),
    "pet": ("家裡養了一隻{a}。", "{n}家裡養了什麼動物？", PETS),
    "year": ("{n}於{a}年畢業，", "{n}在哪一年畢業？", [str(y) for y in range(1975, 2021)]),
    "married": ("並在{a}年結婚。", "{n}在哪一年結婚？", [str(y) for y in range(1975, 2021)]),
    "hobby": ("{n}的興趣是{a}。", "{n}的興趣是什麼？", HOBBIES),
}

# Traditional -> Simplified for the characters used above (enough for this generator)
_T2S = str.maketrans(
    "陳黃張楊許鄭謝郭邱賴蘇葉莊呂蕭羅傑詩穎軒臺灣中東長榮積電鴻華訊國銀行故宮博物院"
    "門廣漢廈鳳鋼鐵腦碩體練畫書圍棋琴攝唱興趣歡後於裡麼業現與學這個們畢聯發統",
    "陈黄张杨许郑谢郭邱赖苏叶庄吕萧罗杰诗颖轩台湾中东长荣积电鸿华讯国银行故宫博物院"
    "门广汉厦凤钢铁脑硕体练画书围棋琴摄唱兴趣欢后于里么业现与学这个们毕联发统",
)


def to_simplified(text: str) -> str:
    return text.translate(_T2S)


def make_article(rng: random.Random, index: int, simplified: bool) -> dict:
    """One article: a shuffled biography and one question per fact."""
    person = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
    relations = rng.sample(sorted(RELATIONS), 8)
    rng.shuffle(relations)
    convert = to_simplified if simplified else (lambda s: s)
    context, qas = "", []
    for n, relation in enumerate(relations):
        fact_tpl, question_tpl, pool = RELATIONS[relation]
        answer = convert(rng.choice(pool))
        prefix = convert(fact_tpl.split("{a}")[0].format(n=person))
        sentence = convert(fact_tpl.format(n=person, a=answer))
        start = len(context) + len(prefix)
        context += sentence
        qas.append({
            "id": f"{'s' if simplified else 't'}{index}-{n}",
            "question": convert(question_tpl.format(n=person)),
            "answers": [{"text": answer, "answer_start": start}],
        })
    return {"title": f"article-{index}", "paragraphs": [{"context": context, "qas": qas}]}


def make_squad_json(n_articles: int, seed: int, simplified: bool = False) -> dict:
    rng = random.Random(seed)
    return {"version": "ssl-demo", "data": [make_article(rng, i, simplified) for i in range(n_articles)]}


def write_demo_data(out_dir: str | Path, n_train: int = 1200, n_dev: int = 60, seed: int = 0,
                    simplified: bool = False) -> dict[str, Path]:
    """Write train.json and dev.json (SQuAD format) and return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, split_seed in (("train", n_train, seed), ("dev", n_dev, seed + 10_000)):
        path = out / f"{split}.json"
        path.write_text(json.dumps(make_squad_json(n, split_seed, simplified), ensure_ascii=False), encoding="utf-8")
        paths[split] = path
    return paths


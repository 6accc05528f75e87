"""Every dataset of the contract (../shared/CONTRACTS.md §1 and §4), declared once."""

from __future__ import annotations

from .model import Column, Dataset

__all__ = ["PROGRAMS", "PROGRAM_ALIASES", "ROLL", "SOURCES", "FLAGS", "DATASETS", "CADENCES", "dataset"]

CADENCES = ("monthly", "quarterly", "semiannual", "annual")
CADENCE_ZH = {"monthly": "每月", "quarterly": "每季度", "semiannual": "每半年", "annual": "每年"}

PROGRAMS: dict[str, str] = {
    "dibao": "低保",
    "tekun": "特困",
    "edge": "低保边缘",
    "temp": "临时救助",
    "disability_living": "困难残疾人生活补贴",
    "disability_care": "重度残疾人护理补贴",
    "elderly": "高龄津贴",
    "orphan": "孤儿",
    "unsupported_child": "事实无人抚养儿童",
}
# How rolls kept by townships name the programs: urban and rural 低保 and 特困 are one program
# each here (the standard differs by region, engine.policy), 五保 and 三无 the old names of 特困.
PROGRAM_ALIASES: dict[str, tuple[str, ...]] = {
    "dibao": ("城市低保", "农村低保", "城乡低保", "最低生活保障", "城市最低生活保障", "农村最低生活保障",
              "城乡最低生活保障"),
    "tekun": ("特困供养", "特困人员", "特困供养人员", "城市特困", "农村特困", "城市特困供养", "农村特困供养",
              "特困人员救助供养", "五保", "农村五保", "五保供养", "三无人员"),
    "edge": ("低边", "低保边缘家庭", "低保边缘户", "低保边缘人口"),
    "disability_living": ("残疾人生活补贴", "困难残疾人生活补助"),
    "disability_care": ("残疾人护理补贴", "重度残疾人护理补助"),
    "elderly": ("高龄补贴", "高龄老人津贴", "高龄老人补贴"),
    "orphan": ("孤儿基本生活费", "孤儿基本生活保障"),
    "unsupported_child": ("事实无人抚养", "事实无人抚养儿童基本生活补贴"),
}


def _id(required: bool = True, name: str = "id_number", zh: str = "身份证号") -> Column:
    # The common export headers belong to the person's own ID, never to a second ID column.
    aliases = ("公民身份号码", "身份证号码", "证件号码") if name == "id_number" else ()
    return Column(name, zh, "id", required, aliases=aliases)


ROLL = Dataset(
    "roll",
    "救助对象名册",
    (
        Column("program", "救助类别", "code", codes=PROGRAMS, code_aliases=PROGRAM_ALIASES,
               aliases=("救助类型", "保障类别")),
        Column("household_id", "家庭编号", aliases=("户编号", "家庭ID")),
        _id(),
        Column("name", "姓名"),
        Column("region_code", "行政区划代码", "region", aliases=("区划代码",)),
        Column("benefit_monthly", "月保障金额", "money", aliases=("保障金额",)),
        Column("relation", "与户主关系", required=False),
        Column("declared_income_monthly", "申报月收入", "money", required=False, default="0"),
        Column("enrolled_on", "纳入日期", "date", required=False),
    ),
    doc="One row per person per program; a household is all rows with the same household_id.",
)

_STATUS_NORMAL_CANCELLED = {"normal": "正常", "cancelled": "注销"}

SOURCES: dict[str, Dataset] = {
    d.key: d
    for d in (
        Dataset(
            "hukou",
            "户籍",
            (
                _id(),
                Column("name", "姓名"),
                Column("region_code", "行政区划代码", "region", aliases=("区划代码",)),
                Column(
                    "status",
                    "户籍状态",
                    "code",
                    codes={"normal": "正常", "deceased": "死亡", "moved_out": "迁出", "cancelled": "注销"},
                    code_aliases={"deceased": ("已死亡", "死亡注销"), "moved_out": ("已迁出", "户口迁出", "迁出注销"),
                                  "cancelled": ("已注销",)},
                    aliases=("状态",),
                ),
                Column("status_date", "状态日期", "date", required=False, aliases=("变动日期",)),
            ),
            cadence="monthly",
        ),
        Dataset(
            "deaths",
            "死亡人员",
            (_id(), Column("name", "姓名", required=False), Column("death_date", "死亡日期", "date")),
            cadence="monthly",
        ),
        Dataset(
            "medical",
            "医疗救助/医保结算",
            (
                _id(),
                Column("settled_on", "结算日期", "date"),
                Column("out_of_pocket", "个人自付金额", "money", aliases=("自付金额",)),
            ),
            cadence="monthly",
        ),
        Dataset(
            "vehicles",
            "车辆",
            (
                _id(),
                Column("plate", "号牌号码", aliases=("车牌号",)),
                Column(
                    "vehicle_type",
                    "车辆类型",
                    "code",
                    codes={
                        "car": "小型汽车",
                        "truck": "货车",
                        "motorcycle": "摩托车",
                        "disabled_mobility": "残疾人专用车",
                        "other": "其他",
                    },
                    # The registry's own names (GA 802) for the common kinds.
                    code_aliases={"car": ("小型轿车", "轿车", "小型客车", "小型普通客车", "小型越野客车", "微型轿车"),
                                  "truck": ("轻型货车", "中型货车", "重型货车", "轻型普通货车", "重型普通货车"),
                                  "motorcycle": ("普通二轮摩托车", "二轮摩托车", "轻便二轮摩托车", "三轮摩托车"),
                                  "disabled_mobility": ("残疾人机动轮椅车", "残疾人专用机动车")},
                ),
                Column("purchase_price", "购置价格", "money", required=False),
                Column(
                    "status",
                    "车辆状态",
                    "code",
                    required=False,
                    default="normal",
                    codes={"normal": "正常", "scrapped": "报废", "cancelled": "注销"},
                    aliases=("状态",),
                ),
            ),
            cadence="quarterly",
            identity=("plate",),
        ),
        Dataset(
            "farm_machinery",
            "大型农机具",
            (
                _id(),
                Column("machine_type", "机具类型", required=False),
                Column("purchase_price", "购置价格", "money", required=False),
            ),
            cadence="quarterly",
            identity=("machine_type",),
        ),
        Dataset(
            "property",
            "房产",
            (
                _id(),
                Column("certificate_no", "不动产权证号", aliases=("产权证号", "房产证号")),
                Column(
                    "usage",
                    "房屋用途",
                    "code",
                    codes={
                        "residential": "住宅",
                        "commercial": "商业",
                        "office": "办公",
                        "parking": "车位",
                        "other": "其他",
                    },
                    aliases=("用途",),
                ),
                Column("area_m2", "建筑面积", "number", aliases=("面积",)),
                Column(
                    "status",
                    "产权状态",
                    "code",
                    required=False,
                    default="normal",
                    codes=_STATUS_NORMAL_CANCELLED,
                    aliases=("状态",),
                ),
            ),
            cadence="quarterly",
            identity=("certificate_no",),
        ),
        Dataset(
            "housing_fund",
            "公积金",
            (
                _id(),
                Column("employer", "缴存单位", required=False, aliases=("单位名称",)),
                Column("last_paid_month", "最后缴存月份", "month", aliases=("末次缴存年月",)),
                Column("monthly_contribution", "月缴存额", "money", required=False),
            ),
            cadence="quarterly",
            identity=("employer",),
        ),
        Dataset(
            "prisoners",
            "服刑人员",
            (
                _id(),
                Column("admitted_on", "入监日期", "date", aliases=("收监日期",)),
                Column("released_on", "释放日期", "date", required=False, aliases=("出监日期",)),
            ),
            cadence="quarterly",
        ),
        Dataset(
            "cadre_relatives",
            "村(居)干部近亲属备案",
            (
                _id(),
                _id(required=False, name="cadre_id_number", zh="干部身份证号"),
                Column("cadre_name", "干部姓名", required=False),
                Column("relation", "亲属关系", required=False, aliases=("关系",)),
            ),
            cadence="quarterly",
            identity=("cadre_id_number",),
        ),
        Dataset(
            "payroll",
            "财政供养人员",
            (
                _id(),
                Column("employer", "工作单位", required=False, aliases=("单位名称",)),
                Column("monthly_salary", "月工资", "money", aliases=("月工资收入",)),
            ),
            cadence="semiannual",
            identity=("employer",),
        ),
        Dataset(
            "pensions",
            "退休人员/养老金",
            (
                _id(),
                Column(
                    "pension_type",
                    "养老金类型",
                    "code",
                    codes={"employee": "职工", "public": "机关事业", "resident": "城乡居民"},
                ),
                Column("monthly_amount", "月养老金", "money", aliases=("月领取金额",)),
            ),
            cadence="semiannual",
            identity=("pension_type",),
        ),
        Dataset(
            "deposits",
            "银行存款",
            (
                _id(),
                Column("bank", "开户银行", required=False, aliases=("银行",)),
                Column("balance", "存款余额", "money", aliases=("余额",)),
            ),
            cadence="annual",
            identity=("bank",),
        ),
    )
}

FLAGS = Dataset(
    "flags",
    "核对预警",
    (
        Column("rule_id", "规则"),
        Column("severity", "严重程度", "code", codes={"high": "高", "medium": "中", "low": "低"}),
        Column("cadence", "比对周期", "code", codes=dict(CADENCE_ZH)),
        Column("program", "救助类别", "code", codes=PROGRAMS),
        Column("household_id", "家庭编号"),
        Column("id_number", "身份证号", "id"),
        Column("roll_id_number", "名册身份证号"),
        Column("name", "姓名"),
        Column("region_code", "行政区划代码", "region"),
        Column("source", "比对数据源"),
        Column(
            "match_method",
            "匹配方式",
            "code",
            codes={"exact": "精确", "legacy15": "15位转换", "repaired": "修复", "fuzzy": "模糊匹配"},
        ),
        Column("match_score", "匹配得分", "number"),
        Column("evidence", "证据"),
        Column("overpayment", "多发金额", "money", required=False),
        Column("as_of", "核对基准日", "date"),
    ),
    doc="One row per finding; columns in this order, more may follow.",
)

DATASETS: dict[str, Dataset] = {"roll": ROLL, **SOURCES}


def dataset(key: str) -> Dataset:
    """The declaration of `roll` or a source key; KeyError names the known keys."""
    try:
        return DATASETS[key]
    except KeyError:
        raise KeyError(f"unknown dataset {key!r}; known: {', '.join(DATASETS)}") from None

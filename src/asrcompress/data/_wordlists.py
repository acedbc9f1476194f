"""Word lists for the built-in voice-assistant domain.

Kept as plain whitespace-separated strings so they are easy to extend; every entry is
lower-case ASCII letters and apostrophes, the model's character set.
"""

FIRST_NAMES = """
james mary robert patricia john jennifer michael linda david elizabeth william barbara
richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy
matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily
andrew donna joshua michelle kenneth carol kevin amanda brian dorothy george melissa
timothy deborah ronald stephanie edward rebecca jason sharon jeffrey laura ryan cynthia
jacob kathleen gary amy nicholas angela eric shirley jonathan anna stephen brenda larry
pamela justin emma scott nicole brandon helen benjamin samantha samuel katherine gregory
christine alexander debra frank rachel patrick carolyn raymond janet jack catherine
dennis maria jerry heather tyler diane aaron ruth jose julie adam olivia nathan joyce
henry virginia douglas victoria zachary kelly peter lauren kyle christina ethan joan
walter evelyn noah judith jeremy megan christian andrea keith cheryl roger hannah terry
jacqueline gerald martha harold gloria sean teresa austin ann carl sara arthur madison
lawrence frances dylan kathryn jesse janice jordan jean bryan abigail billy alice joe
judy bruce sophia gabriel grace logan denise albert amber willie doris alan marilyn
juan danielle wayne beverly elijah isabella randy theresa roy diana vincent natalie
ralph brittany eugene charlotte russell marie bobby kayla mason alexis philip lori
priya ravi mei wei hiroshi yuki omar fatima carlos sofia ahmed leila ivan olga
"""

LAST_NAMES = """
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez
lopez gonzalez wilson anderson taylor moore jackson martin lee perez thompson white
harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres
nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter roberts
gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris murphy
cook rogers morgan peterson cooper reed bailey bell kelly howard ward cox richardson
wood watson brooks bennett gray james hughes price sanders patel myers long ross foster
"""

CITIES = """
london paris berlin madrid rome vienna prague warsaw dublin lisbon amsterdam brussels
stockholm oslo helsinki copenhagen athens istanbul moscow cairo lagos nairobi johannesburg
mumbai delhi bangalore chennai karachi dhaka bangkok singapore jakarta manila hanoi
seoul tokyo osaka beijing shanghai sydney melbourne auckland toronto vancouver montreal
chicago boston seattle denver dallas houston austin phoenix atlanta miami orlando
detroit portland nashville memphis baltimore philadelphia pittsburgh cleveland
minneapolis sacramento oakland glasgow edinburgh manchester liverpool birmingham leeds
bristol cardiff belfast oxford cambridge brighton york lima bogota santiago caracas
havana kingston quito montevideo dubai doha riyadh tehran baghdad beirut jerusalem
zurich geneva milan naples venice florence munich hamburg frankfurt cologne lyon
marseille barcelona valencia seville porto krakow budapest bucharest sofia belgrade
"""

COUNTRIES = """
england scotland wales ireland france germany spain italy portugal greece turkey russia
china japan korea india pakistan egypt nigeria kenya brazil argentina chile peru mexico
canada australia sweden norway finland denmark poland austria switzerland belgium
netherlands vietnam thailand indonesia malaysia morocco ghana iceland ukraine colombia
"""

FOODS = """
apples bananas oranges lemons limes grapes strawberries blueberries raspberries cherries
peaches pears plums mangoes pineapples melons watermelon avocados tomatoes potatoes
onions garlic carrots celery lettuce spinach cabbage broccoli cauliflower cucumbers
peppers mushrooms beans peas corn rice pasta noodles bread bagels muffins croissants
cereal oatmeal flour sugar salt pepper butter margarine cheese milk cream yogurt eggs
bacon sausages ham chicken beef pork lamb turkey salmon tuna shrimp cod sardines tofu
lentils chickpeas almonds walnuts peanuts cashews raisins honey jam jelly ketchup
mustard mayonnaise vinegar oil soup crackers cookies chocolate candy popcorn chips
pretzels juice coffee tea water soda lemonade wine beer cider sandwiches pizza
burgers tacos burritos sushi curry salad pancakes waffles toast cinnamon vanilla
ginger basil parsley oregano thyme coriander paprika nutmeg biscuits doughnuts cake pie
"""

HOUSEHOLD = """
soap shampoo conditioner toothpaste toothbrush deodorant towels tissues napkins
batteries candles lightbulbs detergent sponges bleach foil plates cups forks spoons
knives blankets pillows sheets umbrella charger headphones keys wallet glasses
"""

DEVICES = """
lights lamp heater fan thermostat television radio speaker oven microwave dishwasher
dryer washer kettle toaster fridge freezer doorbell camera alarm sprinkler blinds
curtains vacuum router printer computer laptop tablet phone garage gate
"""

ROOMS = """
kitchen bedroom bathroom living room hallway office garage basement attic garden
porch patio dining nursery study balcony
"""

APPS = """
messages email calendar maps music podcasts camera photos notes reminders weather
clock calculator settings browser contacts news wallet translator recorder
"""

GENRES = """
jazz blues rock pop classical country folk reggae soul funk disco techno house metal
punk gospel opera hip hop ambient salsa
"""

COLORS = """
red orange yellow green blue purple pink brown black white grey silver gold violet
turquoise crimson beige navy teal maroon
"""

DAYS = "monday tuesday wednesday thursday friday saturday sunday"

MONTHS = """
january february march april may june july august september october november december
"""

# Dictation vocabulary: common English words grouped by role so templates stay grammatical.
NOUNS = """
meeting report project letter message email document budget schedule plan proposal
contract invoice receipt ticket package parcel delivery order appointment interview
presentation lecture lesson class exam homework assignment book article story poem
song movie film show episode game match party dinner lunch breakfast picnic trip
holiday vacation journey flight train bus taxi car bike boat ship bridge road street
avenue park river lake mountain beach forest island village town city country school
college university hospital library museum theater cinema restaurant cafe bakery shop
store market bank station airport hotel office factory farm church stadium gym pool
doctor dentist nurse teacher student manager engineer lawyer driver pilot chef farmer
artist writer singer neighbor friend brother sister mother father uncle aunt cousin
daughter son grandmother grandfather husband wife baby child team family company
window door table chair desk shelf floor wall roof stairs garden fence tree flower
dog cat bird horse fish rabbit mouse cow sheep chicken weather rain snow wind storm
sunshine cloud morning afternoon evening night week month year weekend season summer
winter spring autumn problem question answer idea reason result decision change price
money cost payment account password address number name language picture photo video
music news information recipe menu list note reminder alarm timer volume battery
"""

VERBS = """
call send read write check finish start stop open close book cancel move change buy
sell bring take pick drop clean fix paint cook bake wash visit meet ask tell show
find share print sign review update prepare organize plan confirm remember forget
water feed walk pay order return collect deliver invite schedule follow watch play
"""

ADJECTIVES = """
new old big small long short early late quick slow easy hard good bad great nice
happy sad busy quiet loud warm cold hot cool bright dark clean dirty important
interesting beautiful expensive cheap heavy light fresh simple strange final full
empty free ready open closed safe local public private special strong weak young
"""

ADVERBS = "today tomorrow tonight later soon now again first next usually always never"

PHRASE_WORDS = """
a an the to for of in on at by with from about after before during until into over
under near and or but so because if when while then than that this these those there
here what where who why how which is are was were be been will would can could should
must might may do does did have has had not please me my you your we our us they them
their he him his she her it its i'm you're it's don't can't won't i'll we'll let's
what's there's that's remind set turn play show tell give make get go let need want
like love think know say see look hear feel keep put leave help try use going
some any all every each more most much many few little lot very really just also
only still even yet too up down out off back away around last hour hours minute
minutes second seconds o'clock am pm degrees percent half quarter past noon midnight
oh zero
"""

ONES = "zero one two three four five six seven eight nine".split()
TEENS = (
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
)
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINALS = """
first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth
thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth
twenty-first twenty-second twenty-third twenty-fourth twenty-fifth twenty-sixth
twenty-seventh twenty-eighth twenty-ninth thirtieth thirty-first
""".split()


def words(block: str) -> list[str]:
    """Split a word-list block into entries (multi-word entries are not used here)."""
    return block.split()

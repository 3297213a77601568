"""Frequent English words: what is *not* a user's vocabulary.

When no word list is given, the terms scored by term recall are the training texts' words
that are not in this list (and not short): drug names, people, places, jargon. The list
is written by hand from general knowledge of English word frequency; it only has to
catch the common words, not rank them.
"""

COMMON_WORDS = frozenset("""
a about above across act action actually add after again against age ago agree ahead air all almost alone along
already also although always am among amount an and another answer any anyone anything appear apply are area
around arrive art as ask at away back bad bag ball bank base be bear beat beautiful because become bed been before
began begin behind being believe below best better between big bill bit black blood blue board body book born both
bottom box boy break bring brother brown build building business busy but buy by call came can car card care carry
case catch cause center centre certain chair chance change check child children choose city class clear close cold
color colour come common company complete consider continue control cook cool corner cost could country couple
course cover cross cry cup current cut dark data date daughter day dead deal dear decide deep did die different
difficult dinner direction do doctor does dog done door double down draw dream dress drink drive drop dry during
each early earth easy eat effect eight either else end enough enter even evening event ever every everyone
everything exactly example except expect experience explain eye face fact fall family far farm fast father fear
feel feet felt few field fight figure fill final finally find fine finish fire first fish five floor fly follow
food foot for force form forward found four free friend from front full fun future game garden gave general get
girl give given glass go god going gone good got great green ground group grow had hair half hand happen happy hard
has have he head health hear heard heart heat heavy held hello help her here high him himself his history hit hold
home hope horse hospital hot hour house how however huge human hundred husband i idea if important in include
increase indeed inside instead interest into is issue it its itself job join just keep kept key kid kill kind king
knew know known land language large last late later laugh lay lead learn least leave left leg less let letter
level lie life light like line list listen little live local long look lose loss lot love low made main major make
man many market matter may maybe me mean meet member men might mile million mind minute miss moment money month
more morning most mother mouth move movie much music must my myself name near need never new news next nice night
nine no none nor north not note nothing notice now number of off offer office often oh old on once one only open or
order other our out outside over own page pain paper parent part party pass past pay people per perhaps person
picture piece place plan play please point police poor position possible power present president pretty price
problem process produce program provide public pull put question quick quickly quite rain raise ran rate rather
reach read ready real really reason receive record red remember report rest result return right river road rock
room round rule run said same sat saw say school sea season second see seem seen sell send sense serve set seven
several shall she short should show side sign simple since sing sister sit six size sleep slow small so some
someone something sometimes son song soon sorry sound south speak special spend stand star start state stay step
still stop story street strong student study such summer sun support sure system table take talk tell ten than
thank that the their them then there these they thing think third this those though thought thousand three
through time to today together told tomorrow too took top toward town tree true try turn twenty two under
understand until up upon us use used usually very voice wait walk wall want war was watch water way we wear week
weight well went were west what when where whether which while white who whole whom whose why wife will win
window winter wish with within without woman women word work world would write wrong year yes yet you young your
yourself above zero patient patients given take taken daily morning evening tablet tablets dose doses twice
""".split())
